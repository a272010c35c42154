"""Power sampling from p(x)^alpha by sequential Monte Carlo (Power-SMC), all particles in one KV-cached batch.

Targets and weights
-------------------
Each prompt gets `n` independent particle systems of `n_particles` particles. A particle is a response
drawn token by token from the proposal q_t = p at temperature 1/a_t (optionally top-k / top-p), where
a_t is the exponent at token t: alpha throughout, or with `alpha_ramp=K` rising linearly from 1 to alpha
over the first K tokens. The intermediate target after t tokens is gamma_t(x) = p(x_{<=t})^{a_t} (a
particle that emitted EOS keeps its complete x), so the incremental log weight of token t is

    (a_t - a_{t-1}) * log p(x_<t) + a_t * log p(x_t | x_<t) - log q_t(x_t | x_<t)

(the first term only while the ramp moves; finished particles get it too and draw nothing, so their
weight is otherwise frozen). After the last token the weighted particles approximate p(x)^alpha over
complete responses (EOS, or `max_new_tokens` reached), and the running product of mean weights is an
estimate of Z = sum_x p(x)^alpha (`log_evidence`).

Resampling: when a system's effective sample size (sum w)^2 / sum w^2 falls below
`ess_threshold * n_particles`, its particles are resampled systematically and their weights reset to the
mean (folded into the evidence). A resampled particle continues from its ancestor's prefix, so the KV
cache rows are reordered with the same ancestor indices (`Decoder.select`, an index_select on the cache);
rows of finished particles leave the batch.

Bias: for finite n_particles one particle drawn by weight is only approximately a draw from p^alpha
(self-normalised importance sampling); pooling systems with weights proportional to their evidence
estimate gives a consistent estimate at any fixed n_particles.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from entropylab.decoder import Proposal, draw, token_stats
from entropylab.errors import ConfigError
from entropylab.sampling._decoding import DecoderFactory
from entropylab.sampling.base import PowerSamples, check_alpha, check_int, check_top_p, prepare

__all__ = ["power_sample_smc", "alpha_schedule", "effective_sample_size", "systematic_resample"]


# ------------------------------------------------------------------------------------------------ pure pieces


def alpha_schedule(alpha: float, ramp: int | None, t: int) -> float:
    """The exponent a_t of token t (0-based): alpha, or linear from 1 to alpha over the first `ramp` tokens."""
    if not ramp:
        return alpha
    return 1.0 + (alpha - 1.0) * min(1.0, (t + 1) / ramp)


def effective_sample_size(log_w: Tensor) -> Tensor:
    """ESS (sum w)^2 / sum w^2 of each row of log weights [S, N]."""
    return torch.exp(2 * torch.logsumexp(log_w, -1) - torch.logsumexp(2 * log_w, -1))


def systematic_resample(log_w: Tensor, u: Tensor) -> Tensor:
    """Ancestor indices [S, N] by systematic resampling of each row of log weights, u [S] uniform in [0, 1)."""
    n = log_w.shape[-1]
    cum = torch.softmax(log_w, -1).cumsum(-1)
    points = (torch.arange(n, device=log_w.device, dtype=cum.dtype)[None, :] + u[:, None]) / n
    return torch.searchsorted(cum, points, right=True).clamp(max=n - 1)


# ------------------------------------------------------------------------------------------------ the sampler


@torch.inference_mode()
def power_sample_smc(
    model,
    tokenizer,
    prompts,
    *,
    alpha: float = 4.0,
    n_particles: int = 16,
    max_new_tokens: int = 256,
    ess_threshold: float = 0.5,
    alpha_ramp: int | None = None,
    n: int = 1,
    seed: int = 0,
    top_k: int = 0,
    top_p: float = 1.0,
    return_particles: bool = False,
    eos_token_id: int | list[int] | None = None,
    backend: str = "auto",
    compact: float = 0.75,
    progress: bool = False,
) -> PowerSamples:
    """Sample from p(x)^alpha with SMC: `n` particle systems per prompt, one response drawn from each by weight.

    `return_particles=True` returns every particle instead (rows grouped by system, n * n_particles per
    prompt) with `log_weights` normalised within each system. `log_evidence` [n_prompts * n] estimates
    log sum_x p(x)^alpha per system.
    """
    alpha = check_alpha(alpha)
    n_particles = check_int("n_particles", n_particles, 1)
    n = check_int("n", n, 1)
    if alpha_ramp is not None:
        alpha_ramp = check_int("alpha_ramp", alpha_ramp, 0)
    if not 0.0 <= float(ess_threshold) <= 1.0:
        raise ConfigError(f"ess_threshold must be in [0, 1], got {ess_threshold!r}")
    check_top_p(top_p)
    setup = prepare(model, tokenizer, prompts, max_new_tokens, eos_token_id=eos_token_id)
    t_max, device, pad = setup.max_new_tokens, setup.device, setup.pad
    prompt, prompt_mask, _ = setup.batch(n * n_particles)
    n_rows = prompt.shape[0]
    n_sys = n_rows // n_particles
    generator = torch.Generator(device=device).manual_seed(int(seed))
    eos = torch.as_tensor(setup.eos, dtype=torch.long, device=device)

    tokens = torch.full((n_rows, t_max), pad, dtype=torch.long, device=device)
    logp_tok = torch.zeros((n_rows, t_max), dtype=torch.float32, device=device)
    logq_tok, ent_tok = torch.zeros_like(logp_tok), torch.zeros_like(logp_tok)
    length = torch.zeros(n_rows, dtype=torch.long, device=device)
    alive = torch.ones(n_rows, dtype=torch.bool, device=device)
    loglik = torch.zeros(n_rows, dtype=torch.float32, device=device)
    log_w = torch.zeros((n_sys, n_particles), dtype=torch.float64, device=device)
    log_z = torch.zeros(n_sys, dtype=torch.float64, device=device)
    batch_rows = torch.arange(n_rows, device=device)  # the row of each decoder batch slot
    resamples, min_ess = 0, float(n_particles)
    generated = 0

    was_training = model.training
    model.eval()
    try:
        dec = DecoderFactory(model, device, backend, batch_hint=n_rows).new(n_rows, prompt.shape[1] + t_max)
        logits = dec.prefill(prompt, prompt_mask)
        steps = range(t_max)
        if progress:
            from entropylab.progress import bar as progress_bar

            steps = progress_bar(steps, desc="power SMC", unit="token")
        a_prev = alpha_schedule(alpha, alpha_ramp, 0)
        for t in steps:
            # 1. extend the live particles by one token from q_t and weight them
            a_t = alpha_schedule(alpha, alpha_ramp, t)
            p = token_stats(logits)
            logp, logq = p.logp, Proposal(alpha=a_t, top_k=top_k, top_p=top_p).logprobs(logits, p.logp)
            live = alive[batch_rows]
            tok = draw(logq, generator).masked_fill_(~live, pad)
            lp = logp.gather(1, tok[:, None])[:, 0]
            lq = logq.gather(1, tok[:, None])[:, 0]
            ent = p.entropy
            r = batch_rows[live]
            tokens[r, t], logp_tok[r, t], logq_tok[r, t], ent_tok[r, t] = tok[live], lp[live], lq[live], ent[live]
            inc = (a_t - a_prev) * loglik.double()  # the ramp re-weights every prefix, finished ones included
            inc[r] += a_t * lp[live].double() - lq[live].double()
            log_w += inc.view(n_sys, n_particles)
            loglik[r] += lp[live]
            length[r] += 1
            alive[r] &= ~torch.isin(tok[live], eos)
            generated += int(live.sum())
            a_prev = a_t
            # 2. resample the systems whose ESS fell below the threshold; caches follow their ancestors
            ess = effective_sample_size(log_w)
            min_ess = min(min_ess, float(ess.min()))
            need = ess < ess_threshold * n_particles
            if n_particles > 1 and bool(need.any()):
                sys_ids = need.nonzero()[:, 0]
                u = torch.rand(sys_ids.numel(), generator=generator, device=device)
                local = systematic_resample(log_w[sys_ids], u)
                ancestor = torch.arange(n_rows, device=device).view(n_sys, n_particles).clone()
                ancestor[sys_ids] = local + (sys_ids * n_particles)[:, None]
                ancestor = ancestor.flatten()
                log_z[sys_ids] += torch.logsumexp(log_w[sys_ids], -1) - math.log(n_particles)
                log_w[sys_ids] = 0.0
                tokens, logp_tok, logq_tok, ent_tok = (
                    tokens[ancestor],
                    logp_tok[ancestor],
                    logq_tok[ancestor],
                    ent_tok[ancestor],
                )
                length, alive, loglik = length[ancestor], alive[ancestor], loglik[ancestor]
                slot = torch.full((n_rows,), -1, dtype=torch.long, device=device)
                slot[batch_rows] = torch.arange(batch_rows.numel(), device=device)
                batch_rows = alive.nonzero()[:, 0]
                if batch_rows.numel():
                    dec.select(slot[ancestor[batch_rows]])
                resamples += int(need.sum())
            elif int(alive[batch_rows].sum()) <= compact * batch_rows.numel():
                keep = alive[batch_rows].nonzero()[:, 0]
                batch_rows = batch_rows[keep]
                if keep.numel():
                    dec.select(keep)
            if batch_rows.numel() == 0 or t + 1 == t_max:
                break
            # 3. feed each live particle's last token (finished rows still in the batch get padding)
            feed = torch.where(alive[batch_rows], tokens[batch_rows, t], pad)
            logits = dec.step(feed)
    finally:
        model.train(was_training)

    log_norm = log_w - torch.logsumexp(log_w, -1, keepdim=True)
    log_evidence = (log_z + torch.logsumexp(log_w, -1) - math.log(n_particles)).float()
    if return_particles:
        keep_rows = torch.arange(n_rows, device=device)
        out_weights = log_norm.flatten().float()
        per_prompt = n * n_particles
    else:
        pick = torch.multinomial(log_norm.exp().float(), 1, generator=generator)[:, 0]
        keep_rows = torch.arange(n_sys, device=device) * n_particles + pick
        out_weights = None
        per_prompt = n
    return setup.collect(
        tokenizer,
        tokens=tokens[keep_rows],
        length=length[keep_rows],
        logq=logq_tok[keep_rows],
        logp=logp_tok[keep_rows],
        entropy=ent_tok[keep_rows],
        width=max(int(length.max()), 1),
        prompt_index=torch.arange(len(setup.prompt_ids), device=device).repeat_interleave(per_prompt),
        n=per_prompt,
        method="smc",
        meta=dict(
            alpha=alpha,
            n_particles=n_particles,
            ess_threshold=float(ess_threshold),
            alpha_ramp=alpha_ramp,
            max_new_tokens=t_max,
            seed=seed,
            top_k=top_k,
            top_p=top_p,
            return_particles=return_particles,
        ),
        evaluated=dec.evaluated,
        generated=generated,
        log_weights=out_weights,
        log_evidence=log_evidence,
        stats=dict(resamples=resamples, min_ess=min_ess, systems=n_sys),
    )
