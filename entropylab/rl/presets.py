"""Named trainer presets (no torch here, so the CLI can list them instantly)."""

from __future__ import annotations

from typing import Any

#: How much shorter our responses are than the papers' (about 35 tokens against about a thousand): Clip-Cov's and
#: KL-Cov's ratios are scaled by it, so that they touch as many tokens per response as at the papers' ratios
#: (2e-4 and 2e-3 of ~1,000 tokens: 0.2 and 2 a response). At the papers' ratios they would touch 1 and 4 of the
#: ~2,300 tokens of one of our micro-batches: a fortieth of a token per response.
RESPONSE_LENGTH_SCALE = 30.0
CLIP_COV_RATIO = 2e-4 * RESPONSE_LENGTH_SCALE
KL_COV_RATIO = 2e-3 * RESPONSE_LENGTH_SCALE

# Named presets: overrides on top of the defaults (dotted keys reach into `loss`). The intervention
# coefficients are the papers' defaults (docs/science.md sections 1-3), but for the Clip-Cov and KL-Cov ratios,
# scaled to our response length (above); `clip_cov_paper` and `kl_cov_paper` keep the papers' ratios.
PRESETS: dict[str, dict[str, Any]] = {
    "grpo": {},
    "clip_cov": {
        "loss.policy_loss": "clip_cov",
        "loss.clip_ratio_low": 1.0,
        "loss.clip_ratio_high": 1.0,
        "loss.clip_ratio_c": None,
        "loss.clip_cov_ratio": CLIP_COV_RATIO,
    },
    "kl_cov": {"loss.policy_loss": "kl_cov", "loss.kl_cov_ratio": KL_COV_RATIO},
    "clip_cov_paper": {
        "loss.policy_loss": "clip_cov",
        "loss.clip_ratio_low": 1.0,
        "loss.clip_ratio_high": 1.0,
        "loss.clip_ratio_c": None,
    },
    "kl_cov_paper": {"loss.policy_loss": "kl_cov"},
    "entropy_bonus": {"loss.entropy_coef": 0.005},
    "ref_kl": {"loss.kl_coef": 0.01, "loss.kl_kind": "low_var_kl"},
    "clip_higher": {"loss.clip_ratio_high": 0.28},
    "top20": {"loss.entropy_mask": "top", "loss.rho": 0.2},
    "bottom80": {"loss.entropy_mask": "bottom", "loss.rho": 0.2},
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
