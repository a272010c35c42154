"""entropylab.logs on the three real verl console logs (shared copies and the bundled ones in data/real-logs)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from entropylab import logs

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-logs"
BUNDLED = REPO / "data" / "real-logs"
REF = "Qwen2.5-0.5B-bsz256_2-prompt1024-resp512-0.567.log"
SHORT = "Qwen2.5-0.5B-bsz256_2-prompt512-resp256-0.538.log"
GEMMA = "gemma-2-2b-it-ppo-bsz512_4-prompt1024-resp-512-0.640.log"
SCORE = "val/test_score/openai/gsm8k"

# Counted independently with grep: `grep -a -o 'step:[0-9]* - ' LOG | sort -u | wc -l` for the steps and
# `grep -a 'step:' LOG | grep -a -c test_score` (+1 for the 'Initial validation metrics' line) for validation.
EXPECTED = {
    # name: (steps, validation values incl. step 0, fit points, first/last entropy, first/last reward, last score)
    REF: (435, 44, 43, (0.526, 0.066), (0.012, 0.707), 0.543),
    SHORT: (435, 44, 43, (0.450, 0.055), (0.004, 0.715), 0.526),
    GEMMA: (106, 11, 10, (0.419, 0.149), (0.416, 0.682), 0.621),
}


def _dirs() -> list[Path]:
    return [d for d in (SHARED, BUNDLED) if (d / GEMMA).exists()]


@pytest.fixture(params=_dirs(), ids=lambda d: d.parent.parent.name + "/" + d.parent.name)
def log_dir(request) -> Path:
    return request.param


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_log_counts_and_values(log_dir: Path, name: str) -> None:
    n_steps, n_val, n_points, (h0, h1), (r0, r1), last_score = EXPECTED[name]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", logs.LogWarning)
        df = logs.load(log_dir / name)
    run = name.removesuffix(".log")
    # The real logs read without a warning. The gemma log ends inside its last line (no newline), as a log
    # still being written does: that line's last value may be cut mid-number and is left out, with a note
    # (normal input, not a warning).
    torn = (
        [
            f"{log_dir / name}: the last line has no newline (a log still being written?): its last value, "
            "possibly cut mid-number, left out"
        ]
        if name == GEMMA
        else []
    )
    assert [str(w.message) for w in record] == []
    assert df.attrs["entropylab"][name.removesuffix(".log")]["notes"] == torn
    assert list(df.columns[:5]) == ["run", "step", "entropy", "reward", SCORE]
    assert (df["run"] == run).all()
    assert len(df) == n_steps and df["step"].tolist() == list(range(n_steps))
    assert df["step"].dtype == np.int64
    assert df[SCORE].notna().sum() == n_val
    assert df["entropy"].iloc[0] == h0 and df["entropy"].iloc[-1] == h1
    assert df["reward"].iloc[0] == r0 and df["reward"].iloc[-1] == r1
    assert df[SCORE].dropna().iloc[-1] == last_score
    assert df["entropy"].notna().all()
    meta = df.attrs["entropylab"][run]
    assert meta["format"] == "verl-console"
    assert meta["entropy_key"] == "actor/entropy_loss"
    assert meta["reward_key"] == "critic/score/mean"
    assert meta["score"] == SCORE
    assert meta["n_steps"] == n_steps and meta["n_val"] == n_val
    assert meta["warnings"] == [] and meta["notes"] == torn
    assert "critic/rewards/mean" in df.columns and "critic/score/mean" not in df.columns
    pts = logs.points(df)
    assert len(pts) == n_points
    assert list(pts.columns) == ["run", "step", "entropy", "score"]
    assert 0 not in pts["step"].tolist()
    assert pts.attrs["score"] == {run: SCORE}


def test_initial_validation_is_step_zero(log_dir: Path) -> None:
    ref = logs.load(log_dir / REF)
    assert ref[SCORE].iloc[0] == pytest.approx(0.0007621951219512195, abs=0)  # from 'Initial validation metrics'
    gemma = logs.load(log_dir / GEMMA)
    # printed twice at step 0: full precision in the dict, 0.521 on the step line; the precise one is kept
    assert gemma[SCORE].iloc[0] == 0.520579268292683
    assert logs.points(gemma, initial=True)["step"].iloc[0] == 0


def test_reference_fit_points(log_dir: Path) -> None:
    """The reference fit: least squares on 43 points gives a~0.63, b~1.23, R2~0.89."""
    pts = logs.points(logs.load(log_dir / REF))
    assert len(pts) == 43
    assert pts["step"].tolist() == list(range(9, 430, 10))
    h, r = pts["entropy"].to_numpy(), pts["score"].to_numpy()
    x = np.c_[-np.exp(h), np.ones_like(h)]
    (a, b), *_ = np.linalg.lstsq(x, r, rcond=None)
    r2 = 1 - ((r - x @ [a, b]) ** 2).sum() / ((r - r.mean()) ** 2).sum()
    assert (round(a, 2), round(b, 2), round(r2, 2)) == (0.63, 1.23, 0.89)


def test_directory_of_logs_gives_three_runs(log_dir: Path) -> None:
    df = logs.load(log_dir)
    assert sorted(df["run"].unique()) == sorted(n.removesuffix(".log") for n in EXPECTED)
    assert len(df) == 435 + 435 + 106
    pts = logs.points(df)
    assert pts.groupby("run").size().to_dict() == {n.removesuffix(".log"): e[2] for n, e in EXPECTED.items()}


def test_inspect_real_log(log_dir: Path) -> None:
    text = logs.inspect(log_dir / GEMMA)
    assert "format      verl-console" in text
    assert "steps       106 (steps 0..105)" in text
    assert "actor/entropy_loss -> entropy (106 values)" in text
    assert "critic/score/mean -> reward" in text and "not chosen: critic/rewards/mean" in text
    assert "val/test_score/openai/gsm8k <- test_score/openai/gsm8k, val/test_score/openai/gsm8k (11 values)" in text
    assert "points      10 fit points (score and entropy at the same step); step 0" in text
    assert "warnings    none" in text and "notes       the last line has no newline" in text
    assert "prompt_length/min" in logs.load(log_dir / REF).columns


def test_bundled_copies_match_shared() -> None:
    if not (SHARED / GEMMA).exists():
        pytest.skip("../shared is not beside this clone")
    for name in EXPECTED:
        assert (BUNDLED / name).read_bytes() == (SHARED / name).read_bytes()


def test_import_is_light() -> None:
    code = "import sys, entropylab.logs; assert not {'pandas', 'pyarrow', 'tensorboard', 'torch'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
