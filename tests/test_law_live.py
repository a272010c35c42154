"""The law while a run trains: live_forecast, alarms, LiveLaw (the trainers' hook), the forecast's history."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entropylab import logs
from entropylab.law import LAW_KEYS, LiveLaw, alarms, fit_law, forecast_history, headroom, live_forecast, reliable_from

REAL = Path(__file__).resolve().parents[1] / "data" / "real-logs"


def run(n=20, sigma=0.005, seed=0, a=0.3, b=1.0):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1) * 10.0
    H = 1.0 * np.exp(-steps / 120) + 0.05
    return H, b - a * np.exp(H) + rng.normal(0, sigma, n), steps


def test_headroom_is_what_the_law_still_gains():
    H, R, steps = run()
    fit = fit_law(H=H, R=R, steps=steps)
    assert headroom(fit, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert headroom(fit, 0.5) == pytest.approx(fit.a * (math.exp(0.5) - 1))


def test_live_forecast_record():
    H, R, steps = run()
    prev = fit_law(H=H[:-1], R=R[:-1], steps=steps[:-1])
    record, fit = live_forecast(H=H, R=R, steps=steps, previous=prev, val_size=None)
    assert record["n"] == 20 and record["step"] == 200.0 and record["score"] == R[-1]
    assert record["ceiling"] == fit.ceiling and [record["ceiling_low"], record["ceiling_high"]] == list(fit.ceiling_ci)
    assert record["last_error"] == pytest.approx(float(prev.predict(H[-1:])[0] - R[-1]))
    assert record["ok"] and record["verdict"] == "ok" and record["lack_of_fit_p"] > 0.01
    few, none = live_forecast(H=H[:2], R=R[:2], steps=steps[:2])
    assert none is None and few["ceiling"] is None and few["verdict"].startswith("no fit yet: only 2 point(s)")


def test_alarms_in_plain_words():
    H, R, steps = run()
    assert alarms(fit_law(H=H, R=R, steps=steps), H) == []
    collapse = alarms(None, [1.0, 0.5, 0.2, 0.08])
    assert collapse == ["entropy near collapse: 0.08 nats, 8% of its first value 1"]
    rebound = alarms(None, [1.0, 0.6, 0.3, 0.2, 0.5])
    assert rebound == ["entropy rebounding: up from 0.2 to 0.5 nats (37% of its fall)"]
    broken = R.copy()
    broken[-5:] -= 0.05  # the last five scores fall away from the law
    msgs = alarms(fit_law(H=H, R=broken, steps=steps), H, noise_sd=0.005)
    assert any(m.startswith("the law is breaking: the last 5 scores sit below the fit") for m in msgs)
    flat_H = np.linspace(0.3, 0.002, 20)  # entropy almost exhausted: the score is at the ceiling
    flat = fit_law(H=flat_H, R=1.0 - 0.3 * np.exp(flat_H) + np.random.default_rng(1).normal(0, 0.005, 20), steps=steps)
    reached = alarms(flat, flat_H, noise_sd=0.01)
    assert any(m.startswith("ceiling reached within noise") for m in reached)


def test_live_law_is_the_trainers_hook():
    H, R, steps = run()
    live = LiveLaw(val_size=None)
    logged = [live.update(s, h, r) for s, h, r in zip(steps, H, R)]
    assert logged[0] == {} and logged[1] == {}  # below 3 points: nothing to log
    assert set(logged[2]) == set(LAW_KEYS)
    fit = fit_law(H=H, R=R, steps=steps)
    assert logged[-1]["law/ceiling"] == pytest.approx(fit.ceiling)
    assert logged[-1]["law/ceiling_low"] == pytest.approx(fit.ceiling_ci[0])
    assert logged[-1]["law/headroom"] == pytest.approx(headroom(fit, H[-1]))
    assert live.update(999, float("nan"), 0.5) == {} and len(live.H) == 20


def test_forecast_history_replays_a_run():
    H, R, steps = run(n=30)
    history = forecast_history(H=H, R=R, steps=steps, min_points=5)
    assert history["n"].tolist() == list(range(5, 31)) and history["step"].iloc[-1] == 300.0
    full = fit_law(H=H, R=R, steps=steps)
    assert history["ceiling"].iloc[-1] == pytest.approx(full.ceiling)
    assert (history["final_actual"] == R[-1]).all()
    assert (history["ceiling_low"] <= history["ceiling"]).all() and (
        history["ceiling"] <= history["ceiling_high"]
    ).all()
    when = reliable_from(history, tol=0.02)
    assert when["ceiling_step"] is not None and 0 <= when["ceiling_share"] <= 1
    late = history["step"] >= when["ceiling_step"]
    assert (abs(history.loc[late, "ceiling"] - full.ceiling) <= 0.02).all()
    assert reliable_from(pd.DataFrame(columns=history.columns))["ceiling_step"] is None


def test_forecast_history_on_a_bundled_real_run():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", logs.LogWarning)
        df = logs.load(REAL / "gemma-2-2b-it-ppo-bsz512_4-prompt1024-resp-512-0.640.log")
    history = forecast_history(logs.points(df), val_size=1319)
    assert len(history) == 8 and history["ok"].iloc[-1]
    assert history["ceiling"].iloc[-1] == pytest.approx(0.696, abs=5e-4)


def test_history_figure(tmp_path: Path):
    from entropylab.plots.law import write_history_figures

    H, R, steps = run(n=12)
    files = write_history_figures({"a run": forecast_history(H=H, R=R, steps=steps)}, tmp_path)
    assert sorted(p.name for p in files) == ["forecast_history_a_run.png", "forecast_history_a_run.svg"]
