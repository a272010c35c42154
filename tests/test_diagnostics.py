"""Covariance, Table 1 and the entropy-change theory: against direct formulas and an exact softmax policy."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from entropylab.diagnostics import agreement, covariance_table, entropy_change_check, token_covariance, top_k_count
from entropylab.diagnostics.synthetic import softmax_entropy
from entropylab.rundir import DumpError

QS = (0.0002, 0.002, 0.02, 0.2)


# ---------------------------------------------------------------- token covariance


def test_token_covariance_batch_matches_direct_formula():
    rng = np.random.default_rng(0)
    lp, a = -rng.exponential(1.0, 50), rng.normal(size=50)
    direct = np.array([(a[i] - a.mean()) * (lp[i] - lp.mean()) for i in range(50)])
    np.testing.assert_allclose(token_covariance(lp, a), direct, rtol=1e-12, atol=1e-14)
    # the mean of the centred products is the population covariance
    assert token_covariance(lp, a).mean() == pytest.approx(np.cov(lp, a, bias=True)[0, 1])


@pytest.mark.parametrize("shuffle", [False, True])
def test_token_covariance_groups_centre_within_each_group(shuffle):
    rng = np.random.default_rng(1)
    groups = np.repeat([3, 5, 9, 10], [7, 1, 12, 4])
    if shuffle:
        groups = rng.permutation(groups)
    lp, a = rng.normal(size=groups.size), rng.normal(size=groups.size)
    direct = np.empty(groups.size)
    for g in np.unique(groups):
        m = groups == g
        direct[m] = (a[m] - a[m].mean()) * (lp[m] - lp[m].mean())
    np.testing.assert_allclose(token_covariance(lp, a, groups=groups), direct, rtol=1e-12, atol=1e-14)
    assert token_covariance(lp, a, groups=groups)[groups == 5] == pytest.approx(0.0)  # one-token group


def test_token_covariance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal length"):
        token_covariance(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="groups"):
        token_covariance(np.zeros(3), np.zeros(3), groups=np.zeros(2))


# ---------------------------------------------------------------- Table 1


@pytest.mark.parametrize(
    ("n", "q", "k"),
    [
        (10, 0.2, 2),
        (10_000, 0.0002, 2),
        (10_001, 0.0002, 3),
        (100, 0.0002, 1),
        (1, 0.2, 1),
        (3, 1.0, 3),
        (0, 0.2, 0),
        (2048, 0.002, 5),
        (5000, 0.02, 100),
    ],
)
def test_top_k_count_is_max_1_ceil_qn(n, q, k):
    assert top_k_count(n, q) == k


def _slow_table(df: pd.DataFrame, quantiles, scope: str) -> pd.DataFrame:
    """The straightforward pandas version: centre per group, sort each step, average the head."""
    df = df.astype({"logprob": float, "advantage": float})
    keys = ["step"] if scope == "batch" else ["step", "micro_batch"]
    g = df.groupby(keys)
    df["cov"] = (df["advantage"] - g["advantage"].transform("mean")) * (df["logprob"] - g["logprob"].transform("mean"))
    rows = []
    for step, sub in df.groupby("step"):
        vals = sub["cov"].sort_values(ascending=False).to_numpy()
        n = len(vals)
        row = {"step": step, "n_tokens": n}
        for q in quantiles:
            k = max(1, math.ceil(Fraction(str(q)) * n))
            row[f"q{q}"] = vals[:k].mean()
        row["all"] = vals.mean()
        rows.append(row)
    return pd.DataFrame(rows)


def _random_dump(seed: int, sizes=(1, 3, 7, 40, 4999, 10_001), ties: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = np.repeat(np.arange(len(sizes)) * 10, sizes)
    n = steps.size
    lp = -rng.exponential(0.7, n)
    adv = rng.normal(size=n)
    if ties:  # coarse values: many equal covariances, including at the cut-offs
        lp, adv = np.round(lp, 1), np.round(adv, 0)
    micro = np.concatenate([np.arange(s) * 3 // s for s in sizes])
    df = pd.DataFrame(
        {"step": steps, "logprob": lp.astype(np.float32), "advantage": adv.astype(np.float32), "micro_batch": micro}
    )
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # rows in any order


@pytest.mark.parametrize("scope", ["batch", "micro"])
@pytest.mark.parametrize("ties", [True, False])
def test_covariance_table_matches_slow_pandas(scope, ties):
    df = _random_dump(2, ties=ties)
    fast = covariance_table(df, QS, scope)
    slow = _slow_table(df, QS, scope)
    assert list(fast.columns) == ["step", "n_tokens", "top 0.02%", "top 0.2%", "top 2%", "top 20%", "all"]
    assert fast["step"].tolist() == slow["step"].tolist()
    assert fast["n_tokens"].tolist() == slow["n_tokens"].tolist()
    expected = slow[[f"q{q}" for q in QS] + ["all"]].to_numpy()
    np.testing.assert_allclose(fast.iloc[:, 2:].to_numpy(), expected, rtol=1e-9, atol=1e-12)


def test_covariance_table_tiny_step_takes_its_largest_token():
    df = pd.DataFrame({"step": [0, 0, 0], "logprob": [0.0, -1.0, -2.0], "advantage": [1.0, 0.0, -1.0]})
    cov = token_covariance(df["logprob"], df["advantage"])  # (1)(1), 0, (-1)(-1): [1, 0, 1]
    table = covariance_table(df, QS)
    assert table.loc[0, "top 0.02%"] == pytest.approx(cov.max()) == pytest.approx(1.0)
    assert table.loc[0, "all"] == pytest.approx(2 / 3)


def test_covariance_table_sorts_quantiles_and_can_rank_the_dump_column():
    df = _random_dump(3, sizes=(100, 200), ties=False)
    df["covariance"] = np.arange(len(df), dtype=float)
    table = covariance_table(df, (0.5, 0.01), source="dump")
    assert list(table.columns[2:]) == ["top 1%", "top 50%", "all"]
    top = df[df.step == 0]["covariance"].nlargest(1).mean()
    assert table.loc[0, "top 1%"] == pytest.approx(top)


def test_covariance_table_errors():
    df = _random_dump(4, sizes=(5, 5), ties=False)
    with pytest.raises(ValueError, match="scope"):
        covariance_table(df, scope="global")
    with pytest.raises(DumpError, match="micro_batch"):
        covariance_table(df.drop(columns="micro_batch"), scope="micro")
    with pytest.raises(ValueError, match="quantiles"):
        covariance_table(df, (0.0, 0.2))
    bad = df.copy()
    bad.loc[3, "logprob"] = np.nan
    with pytest.raises(DumpError, match="non-finite value.*logprob"):
        covariance_table(bad)
    with pytest.raises(DumpError, match="missing column advantage"):
        covariance_table(df.drop(columns="advantage"))


# ---------------------------------------------------------------- theory


def _softmax(z):
    p = np.exp(z - z.max())
    return p / p.sum()


def _cov_pi(pi, x, y):
    return float(pi @ ((x - pi @ x) * (y - pi @ y)))


@pytest.mark.parametrize("form", ["npg", "pg"])
def test_entropy_change_is_minus_cov_to_first_order(form):
    """Exact softmax: H(z + dz) - H(z) = -Cov_pi(log pi, dz) + O(eta^2), for dz = eta*A or eta*pi*A."""
    rng = np.random.default_rng(5)
    z, adv = rng.normal(0, 2, 30), rng.normal(size=30)
    pi = _softmax(z)
    x = adv if form == "npg" else pi * adv
    errors = []
    for eta in (1e-1, 1e-2, 1e-3):
        measured = softmax_entropy(z + eta * x) - softmax_entropy(z)
        predicted = -eta * _cov_pi(pi, np.log(pi), x)
        assert measured == pytest.approx(predicted, rel=30 * eta)
        errors.append(abs(measured - predicted))
    assert errors[1] / errors[0] < 0.02 and errors[2] / errors[1] < 0.02  # second order: error ~ eta^2


def _exact_run(form: str, eta: float, n_steps: int = 6, vocab: int = 25, n_tokens: int = 400_000, seed: int = 6):
    """Dumps whose token counts are pi-proportional (so the token mean is the pi-expectation) + exact metrics."""
    rng = np.random.default_rng(seed)
    frames, metrics = [], []
    for t in range(n_steps):
        step = 2 * t
        z, adv = rng.normal(0, 1.5, vocab), rng.normal(size=vocab)
        pi = _softmax(z)
        counts = np.round(pi * n_tokens).astype(int)
        actions = np.repeat(np.arange(vocab), counts)
        logp = np.log(pi)
        frames.append(
            pd.DataFrame(
                {"step": step, "logprob": logp[actions], "advantage": adv[actions], "entropy": softmax_entropy(z)}
            )
        )
        dz = eta * (adv if form == "npg" else pi * adv)
        metrics += [
            {"step": step, "entropy": softmax_entropy(z), "lr": eta},
            {"step": step + 1, "entropy": softmax_entropy(z + dz), "lr": eta},
        ]
    return pd.concat(frames, ignore_index=True), pd.DataFrame(metrics)


@pytest.mark.parametrize("form", ["npg", "pg"])
def test_entropy_change_check_recovers_the_exact_change(form):
    dump, metrics = _exact_run(form, eta=1e-3)
    check = entropy_change_check(dump, metrics)
    assert check.measured_source == "metrics" and check.eta_source == "metrics"
    frame = check.frame
    assert frame["step"].tolist() == [0, 2, 4, 6, 8, 10]
    scale = frame["measured"].abs().max()
    np.testing.assert_allclose(frame[f"predicted_{form}"], frame["measured"], rtol=0.02, atol=0.01 * scale)
    row = check.correlations.loc[form]
    assert row["n"] == 6 and row["pearson"] > 0.999 and row["spearman"] == pytest.approx(1.0)
    assert row["sign_agreement"] == 1.0 and row["scale"] == pytest.approx(1.0, rel=0.02)


def _two_state_run(eta: float, n_steps: int = 5, n_tokens: int = 200_000, seed: int = 8):
    """Each step: a near-sure state whose advantages sit +1 above a spread-out state's, and within each state
    advantages that make the entropy rise. The batch centring adds the between-state covariance (the sure
    state is both likelier and better), which changes no entropy; the state centring does not."""
    rng = np.random.default_rng(seed)
    frames, update = [], []
    for step in range(n_steps):
        rows, before, after = [], 0.0, 0.0
        for z, offset in ((rng.normal(0, 0.3, 20), -1.0), (np.r_[8.0, rng.normal(0, 0.3, 19)], 1.0)):
            pi = _softmax(z)
            adv = offset - 0.5 * np.log(pi) + rng.normal(0, 0.05, z.size)  # unlikely actions better: H rises
            counts = np.round(pi * n_tokens).astype(int)
            actions = np.repeat(np.arange(z.size), counts)
            h0, h1 = softmax_entropy(z), softmax_entropy(z + eta * adv)
            rows.append(pd.DataFrame({"step": step, "logprob": np.log(pi)[actions], "advantage": adv[actions]}))
            rows[-1]["entropy"] = h0
            before, after = before + counts.sum() * h0, after + counts.sum() * h1
        frame = pd.concat(rows, ignore_index=True)
        frames.append(frame)
        n = len(frame)
        update.append({"step": step, "lr": eta, "entropy/before_update": before / n, "entropy/after_update": after / n})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(update)


def test_state_scope_recovers_the_per_state_change_the_batch_scope_mixes():
    dump, metrics = _two_state_run(eta=1e-3)
    state = entropy_change_check(dump, metrics, scope="state").frame
    assert (state["measured"] > 0).all()
    scale = state["measured"].abs().max()
    np.testing.assert_allclose(state["predicted_npg"], state["measured"], rtol=0.05, atol=0.02 * scale)
    batch = entropy_change_check(dump, metrics, scope="batch").frame
    assert (batch["predicted_npg"] < 0).all()  # the between-state term flips the sign
    with pytest.raises(DumpError, match="entropy"):
        entropy_change_check(dump.drop(columns="entropy"), metrics, scope="state")
    with pytest.raises(ValueError, match="recomputed"):
        covariance_table(dump, (0.2,), "state", source="dump")


def test_entropy_change_check_eta_and_measurement_sources():
    dump, metrics = _exact_run("npg", eta=1e-3, n_steps=3, n_tokens=20_000)
    assert entropy_change_check(dump, metrics, lr=2e-3).eta_source == "constant"
    const = entropy_change_check(dump, metrics, lr=2e-3).frame
    np.testing.assert_allclose(const["predicted_npg"], -2e-3 * const["cov_npg"])
    unit = entropy_change_check(dump, metrics.drop(columns="lr"))
    assert unit.eta_source == "unit"
    np.testing.assert_allclose(unit.frame["predicted_npg"], -unit.frame["cov_npg"])
    # no metrics: the dump's mean entropy, which needs consecutive dumped steps (here 0, 2, 4: none)
    none = entropy_change_check(dump)
    assert none.measured_source == "dump" and none.frame["measured"].isna().all()
    assert none.correlations.loc["npg", "n"] == 0
    consecutive = dump.assign(step=dump["step"] // 2)  # steps 0, 1, 2
    fallback = entropy_change_check(consecutive)
    ent = consecutive.groupby("step")["entropy"].mean()
    assert fallback.frame["measured"].iloc[0] == pytest.approx(ent[1] - ent[0])
    assert np.isnan(fallback.frame["measured"].iloc[-1])  # no step after the last


def test_entropy_change_check_prefers_the_same_batch_measurement():
    dump, metrics = _exact_run("npg", eta=1e-3, n_steps=3, n_tokens=20_000)
    steps = sorted(dump["step"].unique())
    update = pd.DataFrame(
        {"step": steps, "entropy/before_update": [1.0, 2.0, 3.0], "entropy/after_update": [0.9, 2.2, 2.7]}
    )
    merged = metrics.merge(update, on="step", how="outer")
    check = entropy_change_check(dump, merged)
    assert check.measured_source == "update"
    np.testing.assert_allclose(check.frame["measured"], [-0.1, 0.2, -0.3], atol=1e-12)
    assert entropy_change_check(dump, metrics).measured_source == "metrics"  # other logs: next-step change


def test_agreement_counts_only_finite_pairs():
    out = agreement([1.0, 2.0, np.nan, 4.0, -1.0], [2.0, 4.0, 1.0, np.inf, -2.0])
    assert out["n"] == 3 and out["pearson"] == pytest.approx(1.0) and out["scale"] == pytest.approx(2.0)
    assert out["sign_agreement"] == 1.0
    few = agreement([1.0, 2.0], [1.0, 3.0])
    assert few["n"] == 2 and np.isnan(few["pearson"]) and np.isnan(few["spearman"])
    assert agreement([], [])["n"] == 0
