"""A diverged run says which parameters it holds (`History.params_step`), and every curvature function refuses
non-finite parameters (or per-example Hessians that overflow) with a `ValueError` instead of a silent number or a
LinAlgError."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory import float64, train
from sam_theory.curvature import (BatchCurvature, hessian, hessian_moments, hvp, per_example_hessians,
                                  per_example_hvp)
from sam_theory.optim import sgd
from sam_theory.problems import linear_regression
from sam_theory.problems.tanh_net import TanhNet


@pytest.fixture(scope="module")
def prob():
    return linear_regression(n=6, p=8, seed=0)


def test_params_step_after_non_finite_update(prob):
    """Losses recorded only at t = 0 and 40: the update turns non-finite first, so the held params are
    x_{diverged_at − 1}."""
    key = jax.random.key(0)
    hist = train(prob, sgd(1e4), steps=40, batch_size=6, key=key, log_every=40)
    assert hist.diverged and hist.params_step == hist.diverged_at - 1
    ref = train(prob, sgd(1e4), steps=hist.params_step, batch_size=6, key=key, log_every=40, max_loss=float("inf"))
    assert ref.params_step == hist.params_step  # (its recorded loss at that step may overflow: flagged there)
    np.testing.assert_array_equal(hist.params, ref.params)


def test_params_step_after_loss_above_max_loss(prob):
    """Default max_loss: the recorded loss at step diverged_at is too large; those (finite) params are kept."""
    hist = train(prob, sgd(10.0), steps=40, batch_size=6, key=jax.random.key(0), log_every=5)
    assert hist.diverged and hist.params_step == hist.diverged_at and hist.diverged_at % 5 == 0
    assert np.all(np.isfinite(hist.params))
    assert float(prob.loss(hist.params)) > 1e10 * max(float(hist.losses[0]), 1.0)


def test_params_step_without_divergence(prob):
    hist = train(prob, sgd(0.1), steps=7, batch_size=2, key=jax.random.key(0))
    assert not hist.diverged and hist.params_step == 7


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_curvature_functions_refuse_non_finite_params(prob, bad):
    w = jnp.zeros(8).at[3].set(bad)
    for call in (lambda: BatchCurvature.from_problem(prob, w, method="dense"),
                 lambda: BatchCurvature.from_problem(prob, w, method="matrix_free"),
                 lambda: hessian(prob.loss, w), lambda: hessian(prob.loss, w, chunk_size=4),
                 lambda: hvp(prob.loss, w), lambda: per_example_hessians(prob, w),
                 lambda: per_example_hvp(prob, w)):
        with pytest.raises(ValueError, match=r"params.*NaN or infinite.*params_step"):
            call()


def test_overflowing_hessians_are_refused_in_float32():
    """Finite but huge params (the frozen params of a diverged run): H_i overflow float32 → ValueError."""
    net = TanhNet(n=4, d=3, width=3, seed=0)
    params = net.init(jax.random.key(0))
    params = {"W": params["W"], "v": jnp.full_like(params["v"], 1e20)}
    with pytest.raises(ValueError, match="overflow float32"):
        BatchCurvature.from_problem(net, params, method="dense")


def test_finite_params_still_work(prob):
    with float64():
        mom = hessian_moments(BatchCurvature.from_problem(prob, jnp.zeros(8), method="dense"))
        H_ref, _ = prob.hessian_closed_form()
        assert abs(mom.a - np.linalg.eigvalsh(H_ref)[-1]) <= 1e-10 * mom.a
