"""Benchmark of log ingestion: `load()` on a ~100 MB verl console log built from the bundled real logs.

Prints the throughput in MB/s (target >= 20 MB/s), the peak memory, and the ratio against a naive baseline
measured in the same run: read the text, split every `step:` line on ' - ' and ':' in Python, one dict per line,
then a DataFrame of the dicts.

    python benchmarks/bench_ingest.py [--mb 100]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "data" / "real-logs"
TARGET_MB_S = 20.0
_STEP = re.compile(rb"step:(\d+)")


def build_log(out: Path, megabytes: float) -> tuple[int, int]:
    """Repeat the real logs until `megabytes`, shifting steps so they keep increasing; (bytes, step lines)."""
    sources = sorted(LOGS.glob("*.log"))
    if not sources:
        sys.exit(f"no real logs in {LOGS}")
    chunks = [p.read_bytes() for p in sources]
    spans = [max(int(s) for s in _STEP.findall(c)) + 1 for c in chunks]
    target, written, offset, lines = int(megabytes * 1e6), 0, 0, 0
    with out.open("wb") as f:
        while written < target:
            for chunk, span in zip(chunks, spans):
                base = offset
                shifted = _STEP.sub(lambda m, base=base: b"step:%d" % (int(m.group(1)) + base), chunk)
                f.write(shifted.rstrip(b"\n") + b"\n")
                written += len(shifted)
                lines += shifted.count(b" step:")
                offset += span
                if written >= target:
                    break
    return written, lines


def naive(path: Path):
    """Baseline: a Python split of every metric line into a dict, then one DataFrame."""
    import pandas as pd

    rows = []
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        at = line.find("step:")
        if at < 0:
            continue
        head, _, rest = line[at:].partition(" - ")
        if not rest or not head[5:].isdigit():
            continue
        row = {"step": int(head[5:])}
        for pair in rest.split(" - "):
            key, _, value = pair.partition(":")
            try:
                row[key] = float(value)
            except ValueError:
                pass
        rows.append(row)
    return pd.DataFrame(rows).groupby("step").last()


_RSS_CHILD = """
import sys, warnings
import pandas
from entropylab import logs

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

base = hwm()
warnings.simplefilter("ignore")
logs.load(sys.argv[1])
print(base, hwm())
"""


def peak_rss_mb(path: Path) -> tuple[float, float] | None:
    """(peak RSS of a fresh process after imports, its growth during load()) in MB; None without /proc."""
    if not Path("/proc/self/status").exists():
        return None
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path)], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    base, peak = (int(v) / 1024 for v in out[-2:])  # VmHWM is in kB
    return base, peak - base


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="size of the generated log in MB (default 100)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of load(); the best one counts")
    args = parser.parse_args(argv)

    import pandas  # noqa: F401  (imported before timing: both contenders use it)

    from entropylab import logs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big-verl-console.log"
        size, step_lines = build_log(path, args.mb)
        mb = size / 1e6
        print(f"log: {mb:.1f} MB, {step_lines} metric lines, built from {len(list(LOGS.glob('*.log')))} real logs")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best = min(timed(logs.load, path)[0] for _ in range(max(1, args.repeat)))
            df = logs.load(path)
            base = min(timed(naive, path)[0] for _ in range(max(1, args.repeat)))
            base_df = naive(path)
            tracemalloc.start()
            logs.load(path)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        rss = peak_rss_mb(path)
    rate, base_rate = mb / best, mb / base
    print(f"rows: {len(df)} steps x {df.shape[1]} columns (baseline: {len(base_df)} steps)")
    print(f"ingest: {rate:.1f} MB/s ({best:.2f} s; {rate / base_rate:.1f}x the naive line-by-line baseline "
          f"at {base_rate:.1f} MB/s)")
    print(f"peak memory of load(): {peak / 1e6:.0f} MB of Python heap (tracemalloc, {peak / size:.2f}x the file)")
    if rss is not None:
        print(f"peak RSS growth of load() in a fresh process: {rss[1]:.0f} MB above {rss[0]:.0f} MB after imports "
              "(the log is memory-mapped: its pages count here)")
    print(f"target >= {TARGET_MB_S:.0f} MB/s: {'met' if rate >= TARGET_MB_S else 'NOT met'}")
    return 0 if rate >= TARGET_MB_S else 1


if __name__ == "__main__":
    sys.exit(main())
