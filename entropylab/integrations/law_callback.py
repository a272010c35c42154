"""The reward-entropy law inside a ``transformers``/TRL trainer: refit at every evaluation, log the ceiling.

:class:`LawForecastCallback` pairs each evaluation's score (TRL GRPO: ``eval_reward``) with the policy's entropy
at that moment (``eval_entropy``, else the latest training ``entropy``), refits the law with
:class:`entropylab.law.LiveLaw` and logs ``law/ceiling``, ``law/ceiling_low``, ``law/ceiling_high`` and
``law/headroom`` through the trainer's own ``log``, so they reach whatever it reports to (TensorBoard, W&B,
``trainer_state.json``). ``stop_when_headroom_below=x`` ends training once the law, with a trustworthy verdict,
predicts less than ``x`` of gain left::

    law = LawForecastCallback(stop_when_headroom_below=0.01, val_size=500)
    trainer = GRPOTrainer(..., args=GRPOConfig(eval_strategy="steps", eval_steps=10, ...), callbacks=[law])
    law.bind(trainer)          # EntropyGRPOTrainer binds it by itself
    trainer.train()

Only the callback's base class comes from ``transformers``; the fit is entropylab's torch-free law.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from transformers import Trainer, TrainerCallback

from entropylab import law
from entropylab.errors import ConfigError
from entropylab.logs import aliases

__all__ = ["LawForecastCallback"]


def _default_score(metrics: dict[str, Any]) -> str | None:
    """The evaluation metric the law fits by default: the best-tier validation key (as `entropylab.logs` picks)."""
    ranked = [
        (aliases.score_tier(k), i, k)
        for i, k in enumerate(metrics)
        if isinstance(metrics[k], (int, float)) and aliases.score_tier(k) is not None
    ]
    return min(ranked)[2] if ranked else None


class LawForecastCallback(TrainerCallback):
    """Refits the law at every evaluation and logs ``law/*``; optionally stops when the headroom is spent.

    score_key: the evaluation metric to fit (default: ``eval_reward`` for GRPO, else the best-tier ``eval_*``
    key). entropy_key: the entropy metric (default: ``eval_entropy`` of the same evaluation, else the latest
    training ``entropy``). val_size: evaluation problems behind each score (the verdict's binomial noise).
    stop_when_headroom_below: end training when ``law/headroom`` falls below this; only on a fit whose verdict
    is ok unless ``require_ok=False``.
    """

    def __init__(
        self,
        *,
        score_key: str | None = None,
        entropy_key: str | None = None,
        val_size: int | None = None,
        stop_when_headroom_below: float | None = None,
        require_ok: bool = True,
        trainer: Any = None,
    ) -> None:
        if stop_when_headroom_below is not None and math.isnan(float(stop_when_headroom_below)):
            raise ConfigError(
                f"LawForecastCallback: stop_when_headroom_below = {stop_when_headroom_below!r} is not a number"
            )
        self.score_key, self.entropy_key = score_key, entropy_key
        self.stop_when_headroom_below, self.require_ok = stop_when_headroom_below, require_ok
        self.live = law.LiveLaw(val_size=val_size)
        self.trainer = trainer
        self.logged: list[dict[str, float]] = []
        self.stopped_at: int | None = None
        self._warned = False

    def bind(self, trainer: Any) -> LawForecastCallback:
        """Log through this trainer (its reporters see the ``law/*`` keys); returns self."""
        self.trainer = trainer
        return self

    def _entropy(self, state: Any, metrics: dict[str, Any]) -> float | None:
        keys = [self.entropy_key] if self.entropy_key else ["eval_entropy", "entropy"]
        for key in keys:
            if isinstance(metrics.get(key), (int, float)):
                return float(metrics[key])
        for entry in reversed(state.log_history):  # the latest training entropy
            for key in keys:
                if isinstance(entry.get(key), (int, float)) and not any(k.startswith("eval_") for k in entry):
                    return float(entry[key])
        return None

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any):
        metrics = metrics or {}
        key = self.score_key or ("eval_reward" if "eval_reward" in metrics else _default_score(metrics))
        entropy = self._entropy(state, metrics)
        if key is None or key not in metrics or entropy is None:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"LawForecastCallback: no {'score ' + repr(key) if key else 'evaluation score'}"
                    f"{' or entropy' if entropy is None else ''} in the evaluation metrics "
                    f"({', '.join(sorted(metrics)[:10])}); pass score_key= / entropy_key=",
                    stacklevel=2,
                )
            return control
        values = self.live.update(state.global_step, entropy, float(metrics[key]))
        if not values:
            return control
        self.logged.append({"step": state.global_step, **values})
        if self.trainer is not None and state.is_world_process_zero:
            Trainer.log(self.trainer, dict(values))  # the base log: TRL's own would flush its pending metrics
        elif state.is_world_process_zero:
            state.log_history.append({**values, "step": state.global_step})
        fit = self.live.fit
        threshold = self.stop_when_headroom_below
        if (
            threshold is not None
            and fit is not None
            and (fit.ok or not self.require_ok)
            and values.get("law/headroom", math.inf) < threshold
        ):
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control
