"""entropylab's own trainer logs the law's keys (law/ceiling, law/ceiling_low/high, law/headroom) in
metrics.jsonl at each validation, from the points so far: the same numbers as a fit of the run's log."""

from __future__ import annotations

import pytest

from entropylab import law, logs, rundir
from entropylab.rl.config import resolve_config
from entropylab.rl.trainer import train


def test_trainer_logs_the_law_at_each_validation(tiny_checkpoint, tmp_path):
    overrides = [
        f"{k}={v}"
        for k, v in dict(
            model=str(tiny_checkpoint),
            steps=4,
            prompts_per_step=4,
            group_size=2,
            max_new_tokens=12,
            val_every=1,
            val_problems=4,
            dump_every=0,
            checkpoint_every=4,
            threads=1,
            lr=1e-2,
        ).items()
    ]
    run = train(resolve_config("grpo", overrides=overrides), tmp_path / "run", progress=False)
    records = rundir.read_metrics(run)
    with_law = [r for r in records if "law/ceiling" in r]
    assert [r["step"] for r in with_law] == [3, 4]  # from the third validation point with an entropy on
    points = [(r["step"], r["entropy"], r["val/acc"]) for r in records if r["step"] and "val/acc" in r]
    for r in with_law:
        upto = [p for p in points if p[0] <= r["step"]]
        fit = law.fit_law(H=[p[1] for p in upto], R=[p[2] for p in upto], steps=[p[0] for p in upto], val_size=4)
        assert r["law/ceiling"] == pytest.approx(fit.ceiling)
        assert [r["law/ceiling_low"], r["law/ceiling_high"]] == pytest.approx(list(fit.ceiling_ci))
        assert r["law/headroom"] == pytest.approx(law.headroom(fit, upto[-1][1]))
    df = logs.load(run)
    assert set(law.LAW_KEYS) <= set(df.columns)  # the one schema: logs reads them like any metric
