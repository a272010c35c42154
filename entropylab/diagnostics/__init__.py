"""Per-token covariance diagnostics over rollout dumps: Table 1, and does Cov(log pi, A) predict dH?

Works on a run directory (metrics.jsonl + rollouts/step_*.parquet) without the trainer: numpy, pandas and
pyarrow only (matplotlib only when figures are written). The run directory and the dump schema
(`DUMP_COLUMNS`, `read_dumps`, `metrics_frame`) are `entropylab.rundir`'s.
"""

from entropylab.diagnostics.covariance import (
    DEFAULT_QUANTILES,
    covariance_table,
    dump_covariance_agreement,
    token_covariance,
    top_k_count,
)
from entropylab.diagnostics.diagnose import Diagnosis, diagnose
from entropylab.diagnostics.theory import FORMS, TheoryCheck, agreement, entropy_change_check, step_covariances

__all__ = [
    "DEFAULT_QUANTILES",
    "FORMS",
    "Diagnosis",
    "TheoryCheck",
    "agreement",
    "covariance_table",
    "diagnose",
    "dump_covariance_agreement",
    "entropy_change_check",
    "step_covariances",
    "token_covariance",
    "top_k_count",
]
