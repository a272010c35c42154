"""The experiments' fingerprinted cache, and the worker processes that fill it.

A result lives in ROOT/KIND/NAME-FINGERPRINT/, where the fingerprint is a hash of everything that determines
it (its settings, the task, the seed, the fingerprints of the checkpoints it was made from). Its `key.json`
holds those parts and is written last: an entry without it is unfinished. Change any part and the result is
computed again in a new entry; change none and it is reused. A `Cache` that is `cached_only` computes nothing:
where a result is missing it raises `NotCached`, which is how `run_jobs` learns which jobs are left to run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pandas as pd

T = TypeVar("T")

#: The file that records an entry's key parts; written last, so its presence means the entry is complete.
KEY_FILE = "key.json"


class NotCached(Exception):
    """Raised by a cache-only `Cache` where a result would have to be computed."""


def fingerprint(parts: Mapping[str, Any]) -> str:
    """Eight hex digits of a hash of `parts` (JSON with sorted keys; other values by their `str`)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def files_key(paths: Iterable[str | Path]) -> str:
    """Short fingerprint of some files by name, size and modification time (cheap even for large files)."""
    h = hashlib.blake2b(digest_size=4)
    for f in sorted(Path(p) for p in paths):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def weights_key(model: str | Path) -> str:
    """Fingerprint of a checkpoint's weight files: a cache made from other weights under the same name differs."""
    from entropylab.models import resolve_checkpoint

    weights = [f for f in resolve_checkpoint(model).iterdir() if f.suffix in (".safetensors", ".bin", ".pt", ".pth")]
    return files_key(weights)


def model_key(model: str | Path) -> str:
    """A model's name, file-system safe, with the fingerprint of its weights."""
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(str(model)).name)
    return f"{name}-{weights_key(model)}"


@dataclasses.dataclass(frozen=True)
class Cache:
    """Results kept under `root`; with `cached_only`, missing ones raise `NotCached` instead of being computed."""

    root: Path
    cached_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def only_cached(self) -> Cache:
        """The same cache, computing nothing."""
        return dataclasses.replace(self, cached_only=True)

    def entry(self, kind: str, name: str, parts: Mapping[str, Any]) -> Path:
        """The directory of the result NAME of KIND made from `parts`: ROOT/KIND/NAME-FINGERPRINT."""
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        return self.root / kind / f"{safe}-{fingerprint({'kind': kind, 'name': name, **parts})}"

    def done(self, entry: Path) -> bool:
        """Whether an entry is complete (its key file is written)."""
        return (entry / KEY_FILE).is_file()

    def may_compute(self, entry: Path) -> None:
        """Raise `NotCached` when this cache may only read (`entry` names what is missing)."""
        if self.cached_only:
            raise NotCached(str(entry))

    def finish(self, entry: Path, parts: Mapping[str, Any]) -> None:
        """Mark `entry` complete by writing its key parts."""
        (entry / KEY_FILE).write_text(json.dumps(parts, indent=1, sort_keys=True, default=str) + "\n")

    def get(
        self,
        kind: str,
        name: str,
        parts: Mapping[str, Any],
        compute: Callable[[Path], object],
        load: Callable[[Path], T],
        *,
        fresh: bool = False,
    ) -> T:
        """`load(entry)` of the complete entry; else (or with `fresh`) `compute(folder)` writes into a new
        folder that then becomes the entry, and that is loaded (a first run and a reuse return the same).
        Two processes computing the same entry at once both succeed; one result is kept."""
        entry = self.entry(kind, name, parts)
        if self.done(entry) and not fresh:
            return load(entry)
        self.may_compute(entry)
        tmp = entry.parent / f".{entry.name}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        compute(tmp)
        self.finish(tmp, parts)
        if fresh or not self.done(entry):
            shutil.rmtree(entry, ignore_errors=True)  # an unfinished or refreshed entry is replaced
        try:
            tmp.rename(entry)
        except OSError:  # another process finished it first
            shutil.rmtree(tmp, ignore_errors=True)
        return load(entry)

    def frame(
        self, kind: str, name: str, parts: Mapping[str, Any], compute: Callable[[], pd.DataFrame]
    ) -> pd.DataFrame:
        """A DataFrame kept as Parquet in its entry."""
        return self.get(
            kind,
            name,
            parts,
            lambda d: compute().to_parquet(d / "frame.parquet"),
            lambda d: pd.read_parquet(d / "frame.parquet"),
        )

    def json(
        self, kind: str, name: str, parts: Mapping[str, Any], compute: Callable[[Path], dict], *, fresh: bool = False
    ) -> dict:
        """A JSON-able dict kept as `summary.json` in its entry; `compute` may write other files beside it."""

        def write(d: Path) -> None:
            (d / "summary.json").write_text(json.dumps(compute(d), indent=1, default=float))

        return self.get(kind, name, parts, write, lambda d: json.loads((d / "summary.json").read_text()), fresh=fresh)


def as_cache(root: str | Path | Cache) -> Cache:
    """`root` as a `Cache` (a path becomes a cache that computes what is missing)."""
    return root if isinstance(root, Cache) else Cache(Path(root))


# --------------------------------------------------------------------------- jobs in worker processes


class Job(NamedTuple):
    """A call `fn(cache, *args, **kwargs)` of a cached experiment; `args[0]` is its cache (or root)."""

    fn: Callable
    args: tuple
    kwargs: dict


def _init_worker(parent: int | None = None) -> None:
    import os

    if parent is not None:
        _die_with(parent)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import threading

    import torch
    from tqdm import tqdm

    torch.set_num_threads(1)
    # tqdm's default lock is a named semaphore that a worker stopped by Ctrl-C or `kill` cannot unlink, so the
    # resource tracker would warn of it as leaked at exit; a worker's bars need only a thread lock
    tqdm.set_lock(threading.RLock())


def _die_with(parent: int) -> None:
    """On Linux, have the kernel send this worker SIGTERM when `parent` dies, even by SIGKILL, so that stopping
    a run of the figures or the demo stops its workers too; exit at once if it is already gone."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def default_workers(workers: int | None = None) -> int:
    """`workers` if given, else one process per core this process may use, at most 2."""
    import os

    if workers is not None:
        return max(1, int(workers))
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _from_cache(job: Job) -> tuple[bool, object]:
    """(True, result) when the job's result is already in its cache, else (False, None); computes nothing."""
    fn, args, kwargs = job
    try:
        return True, fn(as_cache(args[0]).only_cached(), *args[1:], **kwargs)
    except NotCached:
        return False, None


def run_jobs(jobs: Sequence[tuple], workers: int = 1, progress: bool = True) -> list:
    """Run `(function, args, kwargs)` jobs (the cached experiments, cache first) and return their results in order.

    With `workers > 1`, the jobs whose results are not cached yet run in that many spawned processes, one
    torch thread each: the tiny model gains nothing from a second thread, but two processes use two cores.
    """
    jobs = [Job(f, tuple(a), dict(k)) for f, a, k in jobs]
    if workers <= 1:
        return [f(*a, **k) for f, a, k in jobs]
    cached = [_from_cache(job) for job in jobs]
    todo = [i for i, (hit, _) in enumerate(cached) if not hit]
    results = [r for _, r in cached]
    if len(todo) <= 1:
        for i in todo:
            f, a, k = jobs[i]
            results[i] = f(*a, **k)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
    )
    try:
        futures = {}
        for i in todo:
            f, a, k = jobs[i]
            futures[pool.submit(f, *a, **({**k, "progress": False} if "progress" in k else k))] = i
        for future in as_completed(futures):  # one line per job as it finishes, not interleaved progress bars
            i = futures[future]
            results[i] = future.result()
            if progress:
                f, a, _ = jobs[i]
                what = ", ".join(str(x) for x in a if not isinstance(x, Path | Cache) and "/" not in str(x))
                print(f"  done {f.__name__}({what}) at {time.perf_counter() - start:.0f} s", flush=True)
    except BaseException:  # a failed job or an interrupt: stop the other jobs now, not after they finish
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in set(multiprocessing.active_children()) - before:
            worker.terminate()
        raise
    pool.shutdown()
    return results
