"""`check_linear_convergence` and `fit_linear_rate` (THEORY.md §6)."""
import dataclasses

import jax
import numpy as np
import pytest

from sam_theory.convergence import check_linear_convergence, constants, fit_linear_rate
from sam_theory.problems import linear_regression


def test_bound_holds_and_failing_control(x64):
    prob = linear_regression(10, 200, seed=0)
    kw = dict(batch_size=2, steps=60, seeds=8, key=jax.random.key(0), log_every=5)
    res = check_linear_convergence(prob, "usam", **kw)
    assert res.within_bound and res.num_diverged == 0 and res.theorem.c == pytest.approx(0.5)
    assert res.mean[0] == pytest.approx(res.bound[0]) and res.losses.shape == (8, res.t.size)
    assert res.fit.slope < 0 and np.all(np.isfinite(res.seed_slopes))
    # same (η, ρ), but a bound claiming a 30× larger μ: the measured mean must violate it
    c = constants(prob)
    fake = dataclasses.replace(c, mu=30 * c.mu)
    bad = check_linear_convergence(prob, "usam", eta=res.theorem.eta, rho=res.theorem.rho, constants=fake, **kw)
    assert not bad.within_bound and bad.max_ratio > 1


def test_sgd_and_sam_and_bad_input(x64):
    prob = linear_regression(10, 50, seed=1)
    kw = dict(batch_size=2, steps=20, seeds=4, key=jax.random.key(1), log_every=5)
    sgd = check_linear_convergence(prob, "sgd", **kw)
    assert sgd.theorem.rho == 0 and sgd.within_bound
    sam = check_linear_convergence(prob, "sam", **kw)
    assert sam.bound is None and sam.within_bound is None
    with pytest.raises(ValueError, match="method"):
        check_linear_convergence(prob, "adam", **kw)
    with pytest.raises(ValueError, match="rho"):
        check_linear_convergence(prob, "sgd", eta=0.1, rho=0.1, **kw)
    with pytest.raises(ValueError, match="seeds"):
        check_linear_convergence(prob, "usam", **{**kw, "seeds": 1})


def test_fit_linear_rate_ci_and_floor():
    t = np.arange(0, 100, 5)
    rng = np.random.default_rng(0)
    f = 2.0 * 0.95**t * np.exp(0.05 * rng.standard_normal(t.size))
    fit = fit_linear_rate(f, t)
    assert fit.ci[0] < np.log(0.95) < fit.ci[1] and fit.rate_ci[0] < 0.95 < fit.rate_ci[1]
    assert 0.9 < fit.r2 <= 1 and fit.num_points == t.size and fit.intercept == pytest.approx(np.log(2), abs=0.1)
    g = np.concatenate([0.5**np.arange(10), np.full(5, 1e-300)])
    assert fit_linear_rate(g, floor=1e-250).num_points == 10
