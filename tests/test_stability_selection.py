"""sam_theory.stability.selection (Theorem A iv, THEORY.md §5) and its two [trend] checks."""
import jax
import numpy as np
import pytest

from sam_theory.checks import Context, run_check, select
from sam_theory.curvature import BatchCurvature, hessian_moments
from sam_theory.optim import sgd, usam
from sam_theory.problems import diagonal_linear_net
from sam_theory.stability.selection import MOMENTS, minima_moments


def _small():
    return diagonal_linear_net(n=8, d=12, k=2, alpha=0.3, n_test=0, seed=1)


def test_shapes_and_reproducible(x64):
    prob = _small()
    opts = {"SGD": sgd(0.1), "SAM": usam(0.1, 0.2)}
    r1 = minima_moments(prob, opts, seeds=[0, 1, 2], steps=300, batch_size=2)
    r2 = minima_moments(prob, opts, seeds=[0, 1, 2], steps=300, batch_size=2)
    assert r1.names == ("SGD", "SAM") and r1.p == 24 and r1.n == 8 and r1.method == "dense"
    for m in MOMENTS:
        for name in r1.names:
            assert r1.moment(name, m).shape == (3,)
            np.testing.assert_array_equal(r1.moment(name, m), r2.moment(name, m))
    assert r1.initial_loss.shape == (3,) and r1.final_loss["SAM"].shape == (3,)
    assert np.all(r1.final_loss["SGD"] < r1.initial_loss)
    assert r1.paired_gap("a", "SGD", "SAM").shape == (3,)


def test_batched_moments_match_hessian_moments(x64):
    """The vmapped dense moments equal `hessian_moments` (dense and matrix-free) at the trained points."""
    prob = _small()
    res = minima_moments(prob, {"SAM": usam(0.1, 0.2)}, seeds=[3], steps=200, batch_size=2)
    mf = minima_moments(prob, {"SAM": usam(0.1, 0.2)}, seeds=[3], steps=200, batch_size=2, method="matrix_free")
    for m in MOMENTS:
        np.testing.assert_allclose(res.moment("SAM", m), mf.moment("SAM", m), rtol=1e-9)
    # independent reference: retrain one run by hand and call hessian_moments(method="dense")
    from sam_theory.train import train
    k_init, k_run = jax.random.split(jax.random.key(3))
    h = train(prob, usam(0.1, 0.2), steps=200, batch_size=2, key=k_run, params=prob.init(k_init), log_every=200)
    hm = hessian_moments(BatchCurvature.from_problem(prob, h.params, 2, method="dense"), orders=(2, 3, 4))
    np.testing.assert_allclose([res.a["SAM"][0], res.s2["SAM"][0], res.s3["SAM"][0], res.s4["SAM"][0]],
                               [hm.a, hm.s[2], hm.s[3], hm.s[4]], rtol=1e-9)
    np.testing.assert_allclose(res.final_loss["SAM"][0], h.final_loss, rtol=1e-12)


def test_rho_zero_is_sgd(x64):
    """Control: USAM with ρ = 0 is SGD — identical runs and moments; ρ > 0 is not."""
    prob = _small()
    res = minima_moments(prob, {"SGD": sgd(0.1), "USAM0": usam(0.1, 0.0), "SAM": usam(0.1, 0.3)}, seeds=[0, 1],
                         steps=300, batch_size=1)
    for m in MOMENTS:
        np.testing.assert_allclose(res.moment("USAM0", m), res.moment("SGD", m), rtol=1e-12, atol=0)
        assert np.all(np.abs(res.paired_gap(m, "SGD", "SAM")) > 1e-6)


def test_bad_input(x64):
    prob = _small()
    with pytest.raises(ValueError, match="optimizers"):
        minima_moments(prob, {}, seeds=[0], steps=10)
    with pytest.raises(ValueError, match="steps"):
        minima_moments(prob, {"SGD": sgd(0.1)}, seeds=[0], steps=0)
    with pytest.raises(ValueError, match="method"):
        minima_moments(prob, {"SGD": sgd(0.1)}, seeds=[0], steps=10, method="svd")
    with pytest.raises(ValueError, match="batch_size"):
        minima_moments(prob, {"SGD": sgd(0.1)}, seeds=[0], steps=10, batch_size=9)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["theorem_a.sam_minima_flatter", "theorem_a.gap_grows_with_width"])
def test_selection_check_passes(name):
    (check,) = select(name.replace(".", r"\.") + "$")
    record, _ = run_check(check, Context(quick=True, seed=0))
    assert record["passed"], record["detail"]


def test_diverged_run_gives_nan_moments_not_an_error(x64):
    """A learning rate far past 2/λ_max: the run is flagged diverged and its moments are NaN (no LAPACK failure)."""
    prob = _small()
    res = minima_moments(prob, {"SGD": sgd(0.1), "BIG": sgd(50.0)}, seeds=[0, 1], steps=200, batch_size=1)
    assert res.diverged["BIG"].all() and not res.diverged["SGD"].any()
    for m in MOMENTS:
        assert np.isnan(res.moment("BIG", m)).all() and np.isfinite(res.moment("SGD", m)).all()


def test_width_figure_renders_with_ragged_kept_pairs(tmp_path):
    """The gap_grows_with_width figure from a synthetic payload whose knob values keep different numbers of pairs
    (a diverged run, a NaN moment): it renders a non-empty PNG through the check's own figure binding."""
    from sam_theory.checks.registry import REGISTRY
    from sam_theory.checks.theorem_a_selection import Selection, WidthPanel
    from sam_theory.stability.selection import MinimaMoments

    rng = np.random.default_rng(0)

    def point(knob, seeds, lost):
        moments = {m: {"SGD": 1.0 + rng.random(seeds), "SAM": 0.5 + rng.random(seeds)} for m in MOMENTS}
        moments["s3"]["SAM"][0] = np.nan  # an undefined moment of one run
        res = MinimaMoments(("SGD", "SAM"), np.arange(seeds), *(moments[m] for m in MOMENTS),
                            final_loss={k: np.zeros(seeds) for k in ("SGD", "SAM")},
                            max_example_loss={k: np.zeros(seeds) for k in ("SGD", "SAM")},
                            initial_loss=np.ones(seeds), diverged={k: np.zeros(seeds, bool) for k in ("SGD", "SAM")},
                            batch_size=2, replace=False, steps=10, method="dense", p=knob, n=4)
        ok = np.ones(seeds, bool)
        ok[:lost] = False
        return Selection(f"knob={knob}", res, 0.1, 0.05, 1.0, ok)

    panels = [WidthPanel("diagonal net", "d", {10: point(10, 8, 0), 20: point(20, 8, 3), 40: point(40, 8, 1)}),
              WidthPanel("matrix factorization", "r", {2: point(2, 8, 2), 4: point(4, 8, 0)})]
    spec = REGISTRY["theorem_a.gap_grows_with_width"]
    out = spec.figure(panels, tmp_path / "gap.png")
    path = out if out is not None else tmp_path / "gap.png"
    assert path.exists() and path.stat().st_size > 10_000
