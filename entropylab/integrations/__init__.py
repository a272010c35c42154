"""Integrations with other RL frameworks; each is an optional extra imported only by its own module.

- ``entropylab.integrations.trl``: ``EntropyGRPOTrainer`` / ``EntropyGRPOConfig`` (Clip-Cov, KL-Cov and the
  80/20 entropy mask inside TRL's ``GRPOTrainer``) and ``EntropyDumpCallback`` (per-token rollout dumps).
  Needs ``pip install 'entropylab[trl]'``.
"""
