"""Policy losses, entropy mask, KL, aggregation and the composed loss against hand-computed values."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from entropylab.errors import ConfigError
from entropylab.rl.losses import (
    POLICY_LOSSES,
    LossOptions,
    aggregate,
    center_from_sums,
    clip_cov_policy_loss,
    compute_policy_loss,
    covariance_center,
    covariance_sums,
    entropy_bonus,
    entropy_mask,
    entropy_threshold,
    get_policy_loss,
    kl_cov_policy_loss,
    kl_penalty,
    token_covariance,
    vanilla_policy_loss,
)

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def close(a, b, tol=1e-6):
    return torch.allclose(
        torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol, rtol=0
    )


# ------------------------------------------------------------------------------------------------ registry


def test_registry_holds_the_three_losses_and_unknown_names_list_them():
    assert {"vanilla", "clip_cov", "kl_cov"} <= set(POLICY_LOSSES)
    assert get_policy_loss("clip_cov") is clip_cov_policy_loss
    with pytest.raises(ConfigError, match="policy_loss.*clip_cov.*kl_cov.*vanilla"):
        get_policy_loss("nope")


# ------------------------------------------------------------------------------------------------ vanilla


def test_vanilla_ppo_by_hand():
    # ratios [[1.5, 0.5, 1.0], [1.1, 0.7, pad]], A = +1 on row 0, -2 on row 1, window [0.8, 1.2]
    ratio = torch.tensor([[1.5, 0.5, 1.0], [1.1, 0.7, 1.0]])
    logp = ratio.log()
    old = torch.zeros(2, 3)
    adv = torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, -2.0]])
    loss, m = vanilla_policy_loss(logp, old, adv, MASK, LossOptions())
    # row 0: max(-1.5, -1.2) = -1.2 (clipped), max(-0.5, -0.8) = -0.5, -1.0
    # row 1: max(2.2, 2.2) = 2.2, max(1.4, 1.6) = 1.6 (clipped), padding 0
    assert close(loss, [[-1.2, -0.5, -1.0], [2.2, 1.6, 0.0]])
    assert m["pg_clipfrac"] == pytest.approx(2 / 5)
    assert m["pg_clipfrac_lower"] == 0.0
    expected_kl = -(math.log(1.5) + math.log(0.5) + 0.0 + math.log(1.1) + math.log(0.7)) / 5
    assert m["ppo_kl"] == pytest.approx(expected_kl, abs=1e-6)


def test_vanilla_clip_higher_and_dual_clip():
    logp = torch.tensor([[math.log(1.5), math.log(5.0)]])
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    loss, m = vanilla_policy_loss(logp, torch.zeros(1, 2), adv, mask, LossOptions(clip_ratio_high=0.28))
    # A>0: -clip(1.5, 0.8, 1.28) = -1.28; A<0, ratio 5: max(5, 1.2) = 5, dual clip caps at -A*3 = 3
    assert close(loss, [[-1.28, 3.0]])
    assert m["pg_clipfrac_lower"] == pytest.approx(0.5)
    loss, m = vanilla_policy_loss(logp, torch.zeros(1, 2), adv, mask, LossOptions(clip_ratio_c=None))
    assert close(loss, [[-1.2, 5.0]]) and m["pg_clipfrac_lower"] == 0.0


# ------------------------------------------------------------------------------------------------ Clip-Cov

# B=1, T=4, on-policy (ratio 1): A = [2, 2, -2, -2] (mean 0), logp = [0, -2, 0, -2] (mean -1)
# cov = A * (logp + 1) = [2, -2, -2, 2]: candidates for (1, 5) are tokens 0 and 3.
CC_LOGP = torch.tensor([[0.0, -2.0, 0.0, -2.0]])
CC_ADV = torch.tensor([[2.0, 2.0, -2.0, -2.0]])
CC_MASK = torch.ones(1, 4)


def test_token_covariance_by_hand_and_center_helpers():
    assert close(token_covariance(CC_LOGP, CC_ADV, CC_MASK), [[2.0, -2.0, -2.0, 2.0]])
    assert covariance_center(CC_LOGP, CC_ADV, CC_MASK) == pytest.approx((0.0, -1.0))
    # summing the sums of two halves (what an all-reduce does) gives the centre of the whole
    halves = covariance_sums(CC_LOGP[:, :2], CC_ADV[:, :2], CC_MASK[:, :2]) + covariance_sums(
        CC_LOGP[:, 2:], CC_ADV[:, 2:], CC_MASK[:, 2:]
    )
    assert center_from_sums(halves) == pytest.approx((0.0, -1.0))
    padded = token_covariance(torch.tensor([[0.0, 5.0]]), torch.tensor([[1.0, 9.0]]), torch.tensor([[1, 0]]))
    assert close(padded, [[0.0, 0.0]])


def test_clip_cov_by_hand():
    gen = torch.Generator().manual_seed(0)
    opts = LossOptions(policy_loss="clip_cov")  # r = 2e-4: n = max(int(2e-4 * 4), 1) = 1
    loss, m = clip_cov_policy_loss(CC_LOGP, CC_LOGP, CC_ADV, CC_MASK, opts, generator=gen)
    zeroed = (loss == 0).nonzero()[:, 1].tolist()
    assert len(zeroed) == 1 and zeroed[0] in (0, 3)
    assert m["clip_cov_frac"] == pytest.approx(0.25) and m["pg_clipfrac"] == 0.0
    # r = 0.5: n = 2 -> both candidates zeroed; the rest keep -A * 1
    loss, m = clip_cov_policy_loss(
        CC_LOGP, CC_LOGP, CC_ADV, CC_MASK, LossOptions(policy_loss="clip_cov", clip_cov_ratio=0.5), generator=gen
    )
    assert close(loss, [[0.0, -2.0, 2.0, 0.0]]) and m["clip_cov_frac"] == pytest.approx(0.5)


def test_clip_cov_skips_ppo_clipped_tokens_and_bounds_are_strict():
    opts = LossOptions(policy_loss="clip_cov", clip_cov_ratio=0.5)
    old = CC_LOGP.clone()
    old[0, 0] -= 1.0  # ratio e > 1.2 with A > 0: PPO clips token 0, so only token 3 may be zeroed
    loss, m = clip_cov_policy_loss(CC_LOGP, old, CC_ADV, CC_MASK, opts, generator=torch.Generator().manual_seed(1))
    assert close(loss, [[-2.0 * 1.2, -2.0, 2.0, 0.0]])
    assert m["clip_cov_frac"] == pytest.approx(0.25) and m["pg_clipfrac"] == pytest.approx(0.25)
    # centre (1, -1): cov = (A - 1) * (logp + 1) = [1, -1, -3, 3]; cov = 1 is not > lb = 1
    loss, _ = clip_cov_policy_loss(CC_LOGP, CC_LOGP, CC_ADV, CC_MASK, opts, center=(1.0, -1.0))
    assert close(loss, [[-2.0, -2.0, 2.0, 0.0]])


def test_clip_cov_zeroes_nothing_without_candidates():
    opts = LossOptions(policy_loss="clip_cov", clip_cov_lb=100.0, clip_cov_ub=200.0)
    loss, m = clip_cov_policy_loss(CC_LOGP, CC_LOGP, CC_ADV, CC_MASK, opts)
    assert close(loss, -CC_ADV) and m["clip_cov_frac"] == 0.0


def _random_batch(seed: int, b: int = 6, t: int = 9):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = torch.arange(t)[None, :] < lengths[:, None]
    adv = (torch.randn(b, generator=g) * 2)[:, None].expand(b, t).clone()
    adv[adv == 0] = 0.5
    logp = -torch.rand(b, t, generator=g) * 4
    old = logp + torch.randn(b, t, generator=g) * 0.3
    return logp, old, adv, mask


def test_clip_cov_property_over_random_seeds():
    opts = LossOptions(policy_loss="clip_cov", clip_cov_ratio=0.05, clip_cov_lb=0.2, clip_cov_ub=3.0)
    saw_candidates = 0
    for seed in range(200):
        logp, old, adv, mask = _random_batch(seed)
        ratio = torch.exp(logp - old)
        unclipped, clipped = -adv * ratio, -adv * ratio.clamp(0.8, 1.2)
        ppo = torch.maximum(unclipped, clipped)
        ppo_clipped = clipped > unclipped
        cov = token_covariance(logp, adv, mask)
        candidates = mask & ~ppo_clipped & (cov > 0.2) & (cov < 3.0)
        loss, m = clip_cov_policy_loss(logp, old, adv, mask, opts, generator=torch.Generator().manual_seed(seed))
        zeroed = mask & (loss == 0) & (ppo != 0)
        n_valid = int(mask.sum())
        expected = min(max(int(0.05 * n_valid), 1), int(candidates.sum()))
        assert int(zeroed.sum()) == expected
        assert not (zeroed & ~candidates).any()  # never a PPO-clipped, padded or out-of-band token
        assert torch.equal(loss[~zeroed & mask], ppo[~zeroed & mask]) and (loss[~mask] == 0).all()
        assert m["clip_cov_frac"] == pytest.approx(expected / n_valid)
        saw_candidates += bool(candidates.any())
    assert saw_candidates > 100


def test_clip_cov_seeded_choice_is_reproducible():
    logp = -torch.rand(4, 50, generator=torch.Generator().manual_seed(0)) * 3
    adv = torch.linspace(-2, 2, 4)[:, None].expand(4, 50).clone()
    mask = torch.ones(4, 50, dtype=torch.bool)
    opts = LossOptions(policy_loss="clip_cov", clip_cov_ratio=0.01, clip_cov_lb=0.01, clip_cov_ub=10.0)

    def zeroed(seed):
        loss, _ = clip_cov_policy_loss(logp, logp, adv, mask, opts, generator=torch.Generator().manual_seed(seed))
        return (loss == 0).nonzero().tolist()

    assert zeroed(3) == zeroed(3)
    assert len(zeroed(3)) == 2  # int(0.01 * 200) = 2
    assert len({str(zeroed(s)) for s in range(10)}) > 1


def test_clip_cov_zeroed_tokens_get_zero_gradient():
    logp = CC_LOGP.clone().requires_grad_(True)
    opts = LossOptions(policy_loss="clip_cov", clip_cov_ratio=0.5)
    loss, _ = clip_cov_policy_loss(logp, CC_LOGP, CC_ADV, CC_MASK, opts)
    loss.sum().backward()
    # d(-A * exp(logp - old))/dlogp = -A at ratio 1; tokens 0 and 3 are zeroed
    assert close(logp.grad, [[0.0, -2.0, 2.0, 0.0]])


# ------------------------------------------------------------------------------------------------ KL-Cov

# A = [2, 0, 0, -2], logp = [-0.5, -1, -1.5, -3] (mean -1.5) -> cov = A * (logp + 1.5) = [2, 0, 0, 3]
KC_LOGP = torch.tensor([[-0.5, -1.0, -1.5, -3.0]])
KC_ADV = torch.tensor([[2.0, 0.0, 0.0, -2.0]])


def test_kl_cov_by_hand():
    old = KC_LOGP - 0.1  # ratio e^0.1, |logp - old| = 0.1
    e = math.exp(0.1)
    opts = LossOptions(policy_loss="kl_cov", kl_cov_ratio=0.25)  # k = max(1, int(1.0)) = 1 -> token 3
    loss, m = kl_cov_policy_loss(KC_LOGP, old, KC_ADV, CC_MASK, opts)
    assert close(loss, [[-2 * e, 0.0, 0.0, 2 * e + 0.1]], tol=1e-5)
    assert m["kl_cov_frac"] == pytest.approx(0.25) and m["ppo_kl"] == pytest.approx(-0.1, abs=1e-6)
    opts = LossOptions(policy_loss="kl_cov", kl_cov_ratio=0.5, kl_cov_coef=0.5)  # k = 2 -> tokens 3, 0
    loss, _ = kl_cov_policy_loss(KC_LOGP, old, KC_ADV, CC_MASK, opts)
    assert close(loss, [[-2 * e + 0.05, 0.0, 0.0, 2 * e + 0.05]], tol=1e-5)


def test_kl_cov_on_policy_is_plain_pg_and_off_policy_differs_on_exactly_k_tokens():
    for seed in range(30):
        logp, old, adv, mask = _random_batch(seed)
        opts = LossOptions(policy_loss="kl_cov", kl_cov_ratio=0.1)
        loss, _ = kl_cov_policy_loss(logp, logp, adv, mask, opts)
        assert torch.equal(loss, torch.where(mask, -adv, torch.zeros_like(adv)))
        loss, m = kl_cov_policy_loss(logp, old, adv, mask, opts)
        base = torch.where(mask, -adv * torch.exp(logp - old), torch.zeros_like(adv))
        n_valid = int(mask.sum())
        k = max(1, int(0.1 * n_valid))
        differs = ~torch.isclose(loss, base, atol=0, rtol=1e-7)
        assert int(differs.sum()) == k and not (differs & ~mask).any()
        # the penalised tokens are the top-k by covariance
        cov = token_covariance(logp, adv, mask).masked_fill(~mask, -math.inf)
        rest = cov[mask & ~differs]
        assert cov[differs].min() >= (rest.max() if rest.numel() else -math.inf)


def test_state_scope_centres_each_token_at_its_own_state():
    # batch centring picks token 2 (an unlikely token of a penalised response, far below the batch's mean
    # log-prob); centring at each state's -H picks token 1 (a rewarded token more likely than its state's average)
    logp = torch.tensor([[-0.1, -1.0, -3.0, -0.5]])
    ent = torch.tensor([[0.0, 2.0, 2.5, 0.6]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones_like(logp)
    old = logp - 0.1
    base = -adv * math.exp(0.1)
    opts = LossOptions(policy_loss="kl_cov", kl_cov_ratio=0.25, cov_scope="state")
    picked = {}
    for scope, center in (("micro", None), ("state", (0.0, -ent))):
        per_token, _ = kl_cov_policy_loss(logp, old, adv, mask, opts, center=center)
        picked[scope] = int((abs(per_token - base) > 1e-6).reshape(-1).nonzero().squeeze(1))
        composed, _ = compute_policy_loss(logp, old, adv, mask, replace(opts, cov_scope=scope), entropy=ent)
        assert float(composed) == pytest.approx(float(per_token.mean()), abs=1e-6)
    assert picked == {"micro": 2, "state": 1}
    cov = token_covariance(logp, adv, mask, (0.0, -ent))
    assert close(cov, [[-0.1, 1.0, 0.5, -0.1]], tol=1e-6)
    with pytest.raises(ConfigError, match="state"):
        compute_policy_loss(logp, old, adv, mask, LossOptions(policy_loss="clip_cov", cov_scope="state"))


def test_kl_cov_minimum_one_token():
    opts = LossOptions(policy_loss="kl_cov")  # int(2e-3 * 4) = 0 -> 1
    _, m = kl_cov_policy_loss(KC_LOGP, KC_LOGP - 0.1, KC_ADV, CC_MASK, opts)
    assert m["kl_cov_frac"] == pytest.approx(0.25)


# ------------------------------------------------------------------------------------------------ entropy mask

ENT = torch.tensor([[0.1, 0.9, 0.5], [0.7, 0.3, 9.9]])  # 9.9 sits on padding


def test_entropy_mask_by_hand():
    top = entropy_mask(ENT, MASK, rho=0.4)  # ceil(5 * 0.4) = 2: 0.9 and 0.7
    assert top.tolist() == [[False, True, False], [True, False, False]]
    assert entropy_mask(ENT, MASK, rho=0.2).tolist() == [[False, True, False], [False, False, False]]
    bottom = entropy_mask(ENT, MASK, rho=0.4, keep="bottom")
    assert bottom.tolist() == [[True, False, True], [False, True, False]]
    assert entropy_threshold(ENT, MASK, 0.4) == pytest.approx(0.7)
    assert entropy_threshold(ENT, MASK, 1.0) == pytest.approx(0.1)
    assert entropy_mask(ENT, MASK, rho=1.0).tolist() == MASK.bool().tolist()


def test_entropy_mask_fraction_partition_and_scopes():
    for seed in range(25):
        g = torch.Generator().manual_seed(seed)
        h = torch.rand(8, 13, generator=g) * 3
        mask = torch.rand(8, 13, generator=g) > 0.3
        n = int(mask.sum())
        for rho in (0.2, 0.5, 0.7, 1.0):
            top = entropy_mask(h, mask, rho)
            bottom = entropy_mask(h, mask, rho, keep="bottom")
            assert int(top.sum()) == math.ceil(round(n * rho, 9))
            assert not (top & bottom).any() and torch.equal(top | bottom, mask)
            assert not (top & ~mask).any()
            assert h[top].min() >= (h[bottom].max() if bottom.any() else -1.0)
            thr = entropy_threshold(h, mask, rho)  # the same set through the threshold path
            assert torch.equal(entropy_mask(h, mask, rho, threshold=thr), top)
            assert torch.equal(entropy_mask(h, mask, rho, keep="bottom", threshold=thr), bottom)
        # batch scope: cutoff over the whole batch, applied per micro-batch, keeps the batch-wide top 20%
        thr = entropy_threshold(h, mask, 0.2)
        parts = [entropy_mask(h[i : i + 2], mask[i : i + 2], 0.2, threshold=thr) for i in range(0, 8, 2)]
        assert int(sum(p.sum() for p in parts)) == math.ceil(round(n * 0.2, 9))


def test_entropy_mask_ties_are_deterministic_and_threshold_from_flat_values():
    h = torch.ones(2, 5)
    top = entropy_mask(h, torch.ones(2, 5), 0.3)  # ceil(3) = 3: the first three positions
    assert top.tolist() == [[True, True, True, False, False], [False] * 5]
    assert entropy_threshold(torch.tensor([3.0, 1.0, 2.0, 0.0, 5.0])) == pytest.approx(5.0)  # k = 1
    assert entropy_threshold(ENT, torch.zeros(2, 3), 0.2) == math.inf


# ------------------------------------------------------------------------------------------------ bonus and KL


def test_entropy_bonus_sign():
    h = torch.tensor([[1.0, 2.0]], requires_grad=True)
    bonus = entropy_bonus(h, torch.tensor([[1, 0]]), coef=0.01)
    assert close(bonus, [[-0.01, 0.0]])
    bonus.sum().backward()
    assert h.grad[0, 0] < 0  # gradient descent on the loss raises the entropy


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([0.0, -1.0]), torch.tensor([-1.0, 0.0])
    assert close(kl_penalty(logp, ref, "k1"), [1.0, -1.0])
    assert close(kl_penalty(logp, ref, "abs"), [1.0, 1.0])
    assert close(kl_penalty(logp, ref, "k2"), [0.5, 0.5])
    # k3 = exp(ref - logp) - (ref - logp) - 1 = [e^-1 + 1 - 1, e - (-1)... ] = [0.367879, 0.718282]
    assert close(kl_penalty(logp, ref, "k3"), [math.exp(-1), math.e - 2])
    assert close(kl_penalty(logp, ref, "low_var_kl"), [math.exp(-1), math.e - 2])
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, generator=g) * 3, torch.randn(1000, generator=g) * 3
    assert (kl_penalty(a, b, "k3") >= 0).all() and (kl_penalty(a, b, "low_var_kl") <= 10).all()
    with pytest.raises(ConfigError, match="kl_kind"):
        kl_penalty(a, b, "k9")


# ------------------------------------------------------------------------------------------------ aggregation

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
AGG_MASK = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
SELECTED = torch.tensor([[0, 1, 1], [1, 0, 0]], dtype=torch.bool)


def test_aggregation_modes_by_hand():
    assert float(aggregate(LOSS, AGG_MASK, "token-mean")) == pytest.approx(10 / 4)
    assert float(aggregate(LOSS, AGG_MASK, "seq-mean-token-mean")) == pytest.approx((2 + 4) / 2)
    assert float(aggregate(LOSS, AGG_MASK, "seq-mean-token-sum-norm")) == pytest.approx((6 / 3 + 4 / 3) / 2)
    assert float(aggregate(LOSS, AGG_MASK, "seq-mean-token-sum-norm", norm_len=4)) == pytest.approx(1.25)
    with pytest.raises(ConfigError, match="loss_agg_mode"):
        aggregate(LOSS, AGG_MASK, "token-sum")


def test_selected_vs_all_normalisation():
    sel = aggregate(LOSS, AGG_MASK, "token-mean", selected=SELECTED)
    alls = aggregate(LOSS, AGG_MASK, "token-mean", selected=SELECTED, normalise="all")
    assert float(sel) == pytest.approx(9 / 3) and float(alls) == pytest.approx(9 / 4)
    assert float(alls) == pytest.approx(float(sel) * 3 / 4)  # scaled by the selected fraction
    assert float(aggregate(LOSS, AGG_MASK, "seq-mean-token-mean", selected=SELECTED)) == pytest.approx(3.25)
    assert float(aggregate(LOSS, AGG_MASK, "seq-mean-token-mean", selected=SELECTED, normalise="all")) == pytest.approx(
        (5 / 3 + 4) / 2
    )
    nothing = aggregate(LOSS, AGG_MASK, "token-mean", selected=torch.zeros(2, 3, dtype=torch.bool))
    assert float(nothing) == 0.0


def test_aggregation_ignores_nan_on_padding():
    loss = LOSS.clone()
    loss[1, 2] = float("nan")
    assert float(aggregate(loss, AGG_MASK, "seq-mean-token-mean")) == pytest.approx(3.0)


# ------------------------------------------------------------------------------------------------ composed loss


def test_compute_policy_loss_composes_mask_bonus_and_kl():
    logp = torch.tensor([[-1.0, -0.5, -2.0], [-0.3, -1.2, 0.0]], requires_grad=True)
    old = logp.detach().clone()
    adv = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -0.5, -2.0], [-0.3, -1.0, 0.0]])
    h = torch.tensor([[0.1, 0.9, 0.5], [0.7, 0.3, 9.9]], requires_grad=True)
    opts = LossOptions(entropy_mask="top", rho=0.4, entropy_coef=0.01, kl_coef=0.1, kl_kind="k1")
    loss, m = compute_policy_loss(logp, old, adv, MASK, opts, entropy=h, ref_logp=ref)
    # on-policy vanilla: per-token -A; selected = tokens (0,1) and (1,0): (-1 + 1) / 2 = 0
    # entropy bonus over all 5 valid: -0.01 * 2.5 / 5; KL k1 = [0.5, 0, 0, 0, -0.2] -> 0.3 / 5
    expected = 0.0 - 0.01 * 2.5 / 5 + 0.1 * 0.3 / 5
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert m["pg_loss"] == pytest.approx(0.0, abs=1e-7) and m["mask_selected_frac"] == pytest.approx(0.4)
    assert m["entropy"] == pytest.approx(2.5 / 5) and m["kl"] == pytest.approx(0.3 / 5)
    assert m["loss"] == pytest.approx(expected, abs=1e-6)
    loss.backward()
    # only the selected tokens carry policy gradient: d/dlogp = -A / 2 there, KL adds 0.1 / 5 everywhere valid
    assert close(logp.grad, [[0.02, -0.5 + 0.02, 0.02], [0.5 + 0.02, 0.02, 0.0]])
    assert (h.grad[MASK.bool()] < 0).all() and h.grad[1, 2] == 0


def test_compute_policy_loss_plain_matches_aggregate_and_entropy_is_over_all_tokens():
    logp, old, adv, mask = _random_batch(5)
    h = torch.rand(mask.shape)
    for name in ("vanilla", "clip_cov", "kl_cov"):
        opts = LossOptions(policy_loss=name, loss_agg_mode="seq-mean-token-mean", entropy_mask="bottom")
        loss, m = compute_policy_loss(logp, old, adv, mask, opts, entropy=h, generator=torch.Generator().manual_seed(0))
        per_token, _ = get_policy_loss(name)(logp, old, adv, mask, opts, generator=torch.Generator().manual_seed(0))
        sel = entropy_mask(h, mask, 0.2, keep="bottom")
        assert float(loss) == pytest.approx(float(aggregate(per_token, mask, "seq-mean-token-mean", selected=sel)))
        assert m["entropy"] == pytest.approx(float(h[mask].mean()), abs=1e-6)
        assert {"pg_clipfrac", "pg_clipfrac_lower", "ppo_kl", "pg_loss", "mask_selected_frac"} <= set(m)
    assert "clip_cov_frac" in compute_policy_loss(logp, old, adv, mask, LossOptions(policy_loss="clip_cov"))[1]


def test_compute_policy_loss_batch_scopes_use_the_supplied_values():
    logp, old, adv, mask = _random_batch(7)
    h = torch.rand(mask.shape)
    with pytest.raises(ConfigError, match="cov_scope"):
        compute_policy_loss(logp, old, adv, mask, LossOptions(policy_loss="kl_cov", cov_scope="batch"))
    with pytest.raises(ConfigError, match="entropy_scope"):
        compute_policy_loss(logp, old, adv, mask, LossOptions(entropy_mask="top", entropy_scope="batch"), entropy=h)
    with pytest.raises(ConfigError, match="entropy"):
        compute_policy_loss(logp, old, adv, mask, LossOptions(entropy_mask="top"))
    with pytest.raises(ConfigError, match="ref_logp"):
        compute_policy_loss(logp, old, adv, mask, LossOptions(kl_coef=0.1))
    opts = LossOptions(entropy_mask="top", entropy_scope="batch")
    _, m = compute_policy_loss(logp, old, adv, mask, opts, entropy=h, entropy_cutoff=0.5)
    assert m["mask_selected_frac"] == pytest.approx(float((h[mask] >= 0.5).float().mean()))
    opts = LossOptions(policy_loss="kl_cov", cov_scope="batch", kl_cov_ratio=0.1)
    center = (0.3, -1.0)
    got = compute_policy_loss(logp, old, adv, mask, opts, center=center)[0]
    want = aggregate(kl_cov_policy_loss(logp, old, adv, mask, opts, center=center)[0], mask)
    assert float(got) == pytest.approx(float(want))


# ------------------------------------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("policy_loss", "ppo2"),
        ("clip_ratio_low", -0.1),
        ("clip_ratio_high", -1.0),
        ("clip_ratio_c", 1.0),
        ("clip_cov_ratio", 0.0),
        ("clip_cov_ratio", -2e-4),
        ("kl_cov_ratio", 1.5),
        ("kl_cov_coef", -1.0),
        ("clip_cov_ub", 0.5),
        ("rho", 0.0),
        ("rho", 1.2),
        ("kl_coef", -0.1),
        ("entropy_coef", float("nan")),
        ("norm_len", 0),
        ("loss_agg_mode", "token-sum"),
        ("entropy_mask", "middle"),
        ("mask_normalise", "none"),
        ("cov_scope", "global"),
        ("entropy_scope", "global"),
        ("kl_kind", "k9"),
    ],
)
def test_loss_options_validation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"LossOptions\.{field}"):
        LossOptions(**{field: value})


def test_loss_options_defaults():
    opts = LossOptions()
    assert (opts.policy_loss, opts.clip_ratio_low, opts.clip_ratio_high, opts.clip_ratio_c) == (
        "vanilla",
        0.2,
        0.2,
        3.0,
    )
    assert (opts.clip_cov_ratio, opts.clip_cov_lb, opts.clip_cov_ub) == (2e-4, 1.0, 5.0)
    assert (opts.kl_cov_ratio, opts.kl_cov_coef) == (2e-3, 1.0)
    assert (opts.loss_agg_mode, opts.entropy_mask, opts.rho, opts.mask_normalise) == (
        "token-mean",
        None,
        0.2,
        "selected",
    )
    LossOptions(policy_loss="clip_cov", clip_ratio_low=1.0, clip_ratio_high=1.0, clip_ratio_c=None)  # paper window
