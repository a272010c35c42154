"""GRPO-style RL for reasoning models: pure losses and advantage estimators, config, trainer loop.

Import the pieces from their modules (``entropylab.rl.losses``, ``entropylab.rl.advantages``);
this package file stays light so importing it costs nothing.
"""
