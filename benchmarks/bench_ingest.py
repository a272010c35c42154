"""Benchmark of log ingestion: `load()` on a ~100 MB verl console log built from the bundled real logs.

Prints the throughput in MB/s (target >= 50 MB/s), the peak memory, and the ratio against a naive baseline
measured in the same run: read the text, split every `step:` line on ' - ' and ':' in Python, one dict per line,
then a DataFrame of the dicts.

Memory is bounded by the table, not by the file: the same metric lines are read a second time from a file with
model output between them (`--junk` times the bytes of the first), and the peak Python heap of both reads is
printed with their ratio (near 1 when the junk costs nothing).

    python benchmarks/bench_ingest.py [--mb 100] [--junk 4]
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
TARGET_MB_S = 50.0
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


_JUNK = (
    b"(WorkerDict pid=4242) Question: Natalia sold clips to 48 of her friends in April, and then she sold half "
    b"as many clips in May. How many clips did Natalia sell altogether in April and May? Let's think step by "
    b"step. In May she sold 48 / 2 = 24 clips. Altogether 48 + 24 = 72. #### 72<|im_end|>\n"
)


def with_junk(src: Path, out: Path, times: float) -> int:
    """The metric lines of `src` with model output between them, `times` the bytes of `src` in all."""
    data = src.read_bytes()
    lines = data.splitlines(keepends=True)
    per_line = max(1, int((times - 1) * len(data) / max(len(lines), 1) / len(_JUNK)))
    with out.open("wb") as f:
        for line in lines:
            f.write(line)
            f.write(_JUNK * per_line)
    return out.stat().st_size


def heap_peak(load, path: Path) -> float:
    """Peak Python heap (tracemalloc) of one `load(path)`, in bytes."""
    tracemalloc.start()
    load(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


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
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(path)], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split()
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
    parser.add_argument("--junk", type=float, default=4.0, help="size of the junk-laden copy, times the log")
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
            peak = heap_peak(logs.load, path)
            junk_path = Path(tmp) / "junk-verl-console.log"
            junk_size = with_junk(path, junk_path, args.junk)
            junk_best = min(timed(logs.load, junk_path)[0] for _ in range(max(1, args.repeat)))
            junk_peak = heap_peak(logs.load, junk_path)
            same = logs.load(junk_path).drop(columns="run").equals(df.drop(columns="run"))
        rss = peak_rss_mb(path)
        table_mb = df.memory_usage(deep=True).sum() / 1e6
    rate, base_rate = mb / best, mb / base
    print(f"rows: {len(df)} steps x {df.shape[1]} columns (baseline: {len(base_df)} steps)")
    print(
        f"ingest: {rate:.1f} MB/s ({best:.2f} s; {rate / base_rate:.1f}x the naive line-by-line baseline "
        f"at {base_rate:.1f} MB/s)"
    )
    print(
        f"peak memory of load(): {peak / 1e6:.0f} MB of Python heap (tracemalloc, {peak / size:.2f}x the file, "
        f"{peak / 1e6 / table_mb:.1f}x the {table_mb:.0f} MB table)"
    )
    print(
        f"same metric lines with model output between them ({junk_size / 1e6:.0f} MB, {junk_size / size:.1f}x): "
        f"{junk_size / 1e6 / junk_best:.0f} MB/s, peak heap {junk_peak / 1e6:.0f} MB = {junk_peak / peak:.2f}x the "
        f"peak of the plain log (same table: {same}); memory follows the table, not the file"
    )
    if rss is not None:
        print(
            f"peak RSS growth of load() in a fresh process: {rss[1]:.0f} MB above {rss[0]:.0f} MB after imports "
            "(the log is memory-mapped: its pages count here)"
        )
    print(f"target >= {TARGET_MB_S:.0f} MB/s: {'met' if rate >= TARGET_MB_S else 'NOT met'}")
    return 0 if rate >= TARGET_MB_S else 1


if __name__ == "__main__":
    sys.exit(main())
