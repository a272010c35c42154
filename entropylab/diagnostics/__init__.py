"""Per-token covariance diagnostics over rollout dumps: Table 1, and does Cov(log pi, A) predict dH?

Works on a run directory (metrics.jsonl + rollouts/step_*.parquet) without the trainer: numpy, pandas and
pyarrow only (matplotlib only when figures are written). The dump schema is `DUMP_COLUMNS`.
"""

from entropylab.diagnostics.covariance import (
    DEFAULT_QUANTILES,
    covariance_table,
    dump_covariance_agreement,
    token_covariance,
    top_k_count,
)
from entropylab.diagnostics.diagnose import Diagnosis, diagnose
from entropylab.diagnostics.dumps import (
    DUMP_COLUMNS,
    OPTIONAL_COLUMNS,
    DumpError,
    coerce_dump,
    dump_columns,
    dump_files,
    dump_path,
    read_dumps,
    read_metrics,
    validate_dump,
)
from entropylab.diagnostics.theory import (
    FORMS,
    TheoryCheck,
    agreement,
    entropy_change_check,
    step_covariances,
)

__all__ = [
    "DEFAULT_QUANTILES", "DUMP_COLUMNS", "FORMS", "OPTIONAL_COLUMNS", "Diagnosis", "DumpError", "TheoryCheck",
    "agreement", "coerce_dump", "covariance_table", "diagnose", "dump_columns", "dump_covariance_agreement",
    "dump_files", "dump_path", "entropy_change_check", "read_dumps", "read_metrics", "step_covariances",
    "token_covariance", "top_k_count", "validate_dump",
]
