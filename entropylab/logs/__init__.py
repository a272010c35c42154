"""Ingestion of RL training logs (verl, TRL, OpenRLHF, TensorBoard, W&B, CSV/JSONL/Parquet, entropylab runs)
into one canonical DataFrame, and the law's fit points.

    >>> from entropylab import logs
    >>> df = logs.load("data/real-logs/gemma-2-2b-it-ppo-bsz512_4-prompt1024-resp-512-0.640.log")
    >>> pts = logs.points(df)          # run, step, entropy, score
    >>> print(logs.inspect("data/real-logs"))

Logs still being written are normal input: torn and cut lines are skipped with a count. To follow a log while
it grows, reading only what is new at each poll: `entropylab.logs.follow.Follower` (what `entropylab watch`
uses). Importing this package is cheap: pandas, pyarrow and tensorboard are imported when a log is read.
Each format is one module of `entropylab.logs.formats`; `register_format(LogFormat(...))` adds one.
"""

from entropylab.logs.api import LogWarning, concat, load, points
from entropylab.logs.detect import FORMATS
from entropylab.logs.formats import LOG_FORMATS, LogFormat, register_format
from entropylab.logs.summary import inspect

__all__ = [
    "FORMATS",
    "LOG_FORMATS",
    "LogFormat",
    "LogWarning",
    "concat",
    "inspect",
    "load",
    "points",
    "register_format",
]
