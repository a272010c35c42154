"""Named trainer presets (no torch here, so the CLI can list them instantly)."""

from __future__ import annotations

from typing import Any

# Named presets: overrides on top of the defaults (dotted keys reach into `loss`). The intervention
# coefficients are the papers' defaults (docs/science.md sections 1-3).
PRESETS: dict[str, dict[str, Any]] = {
    "grpo": {},
    "clip_cov": {"loss.policy_loss": "clip_cov", "loss.clip_ratio_low": 1.0, "loss.clip_ratio_high": 1.0,
                 "loss.clip_ratio_c": None},
    "kl_cov": {"loss.policy_loss": "kl_cov"},
    "entropy_bonus": {"loss.entropy_coef": 0.005},
    "ref_kl": {"loss.kl_coef": 0.01, "loss.kl_kind": "low_var_kl"},
    "clip_higher": {"loss.clip_ratio_high": 0.28},
    "top20": {"loss.entropy_mask": "top", "loss.rho": 0.2},
    "bottom80": {"loss.entropy_mask": "bottom", "loss.rho": 0.2},
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
