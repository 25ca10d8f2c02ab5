"""Theorem B on linear regression (THEORY.md §6): the bound, and the rate improving with p."""
from __future__ import annotations

import functools

import jax
import numpy as np

from ..convergence import admissible_hyperparameters, fit_linear_rate
from ..optim import usam
from ..problems import as_jax, linear_regression
from ..train import log_steps, run, run_kwargs
from .registry import CheckResult, register
from .stats import Z_TREND, direction_holds, mean_se, summarize

N, BATCH = 20, 4
P_GRID = (40, 100, 400, 1600)
MC_SLACK_SE = 3.0  # slack allowed in the bound check: 3 standard errors of the seed-mean


def _runs(problem, opt, keys, data, *, steps, log_every):
    """f(x_t) for every (key, data) pair: USAM with replacement, one compile per shape."""
    fn = functools.partial(run, **run_kwargs(problem, steps=steps, batch_size=BATCH, log_every=log_every,
                                             replace=True))
    opt_axis = 0 if np.ndim(opt.hparams["lr"]) else None
    out = jax.jit(jax.vmap(lambda o, k, d: fn(o, problem.init(None), k, d), in_axes=(opt_axis, 0, 0)))(
        opt, keys, data)
    return np.asarray(out.losses), np.asarray(out.diverged)


def _stack(trees):
    return jax.tree.map(lambda *xs: np.stack(xs), *trees)


@register("theorem_b.bound.linear_regression", "bound", "§6")
def bound_linear_regression(ctx) -> CheckResult:
    """Seed-mean of f(x_t) ≤ (1 − 2μηc)^t f(x_0) at every t, for p ∈ {40, 100, 400, 1600}, n = 20, b = 4."""
    seeds, steps = (32, 300) if ctx.quick else (128, 1000)
    log_every = 5
    t = log_steps(steps, log_every)
    worst, worst_at, curves, lines = -np.inf, None, {}, []
    ok = True
    for p in P_GRID:
        prob = linear_regression(N, p, seed=ctx.seed)
        thm = admissible_hyperparameters(prob.constants(), BATCH)
        opt = usam(thm.eta, thm.rho)
        keys = jax.random.split(jax.random.key(ctx.seed + p), seeds)
        data = jax.tree.map(lambda x: np.broadcast_to(x, (seeds,) + x.shape), as_jax(prob.data))
        losses, diverged = _runs(prob, opt, keys, data, steps=steps, log_every=log_every)
        mean, se = mean_se(losses)
        bound = thm.bound(t, float(mean[0]))
        ratio = mean[1:] / bound[1:]  # t = 0 is equal by construction
        ok &= bool(np.all(mean <= bound + MC_SLACK_SE * se)) and not diverged.any() and thm.c >= 0.5
        if ratio.max() > worst:
            worst, worst_at = float(ratio.max()), (p, int(t[1:][ratio.argmax()]))
        curves[p] = {"t": t, "mean": mean, "se": se, "bound": bound}
        lines.append(f"p={p}: β={thm.beta:.3f} λ={thm.lam:.4f} μ={thm.mu:.4f} K_b={thm.K_b:.2f} "
                     f"ρ={thm.rho:.3g} η={thm.eta:.3g} c={thm.c:.3f} rate={thm.rate:.5f}; "
                     f"max mean/bound={ratio.max():.3g}")
    detail = (f"stochastic USAM, n={N}, b={BATCH} with replacement, {seeds} batch seeds × {steps} steps, "
              f"(ρ, η) at the c ≥ ½ edge; pass iff seed-mean f(x_t) ≤ (1−2μηc)^t f(x_0) + {MC_SLACK_SE:g}·SE_t at "
              f"every logged t (SE_t = seed std/√{seeds}, the Monte Carlo error of the mean). Measured: max over p and t ≥ 1 of "
              f"mean/bound, at (p, t) = {worst_at}. " + "; ".join(lines))
    return CheckResult(ok, worst, 1.0, detail, data={"curves": curves, "title": "Theorem B, linear regression"})


@register("theorem_b.rate_improves_with_p", "trend", "§6")
def rate_improves_with_p(ctx) -> CheckResult:
    """The fitted log-slope of f(x_t) gets steeper as p grows (paired over data+batch seeds)."""
    seeds, steps, log_every = (8, 300, 5) if ctx.quick else (24, 600, 5)
    t = log_steps(steps, log_every)
    slopes = {}
    for p in P_GRID:
        probs = [linear_regression(N, p, seed=ctx.seed + s) for s in range(seeds)]
        thms = [admissible_hyperparameters(pr.constants(), BATCH) for pr in probs]
        opt = usam(np.array([th.eta for th in thms]), np.array([th.rho for th in thms]))
        keys = jax.random.split(jax.random.key(ctx.seed + 7 * p), seeds)
        losses, _ = _runs(probs[0], opt, keys, _stack([as_jax(pr.data) for pr in probs]), steps=steps,
                          log_every=log_every)
        slopes[p] = np.array([fit_linear_rate(l, t).slope for l in losses])
    zs, lines = [], []
    ok = True
    for lo, hi in zip(P_GRID, P_GRID[1:]):
        holds, s = direction_holds(slopes[lo] - slopes[hi])
        ok &= holds
        zs.append(s.z)
        lines.append(f"slope(p={lo}) − slope(p={hi}) = {s}")
    per_p = ", ".join(f"p={p}: {summarize(v)}" for p, v in slopes.items())
    detail = (f"{seeds} seeds (data and batches), {steps} steps, USAM at each seed's c ≥ ½ edge; fitted "
              f"d log f/dt per p: {per_p}. Paired differences (must be > {Z_TREND:g} SE): " + "; ".join(lines))
    return CheckResult(ok, float(min(zs)), Z_TREND, detail,
                       data={"p": list(P_GRID), "slopes": {p: v for p, v in slopes.items()}})
