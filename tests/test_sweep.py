"""sam_theory.sweep: one compiled vmap over a hyperparameter grid, equal member by member to `train`."""
import importlib

import jax
import numpy as np
import pytest

import sam_theory
from sam_theory import SweepResult, train
from sam_theory.optim import msam, sam
from sam_theory.precision import float64
from sam_theory.problems import linear_regression

sweep_module = importlib.import_module("sam_theory.sweep")
store_module = importlib.import_module("sam_theory.sweep_store")
GRID = {"lr": [0.1, 0.5], "rho": [0.0, 0.05, 0.1], "seed": [0, 1]}


@pytest.fixture(scope="module")
def prob():
    return linear_regression(n=16, p=40, seed=0)


@pytest.fixture(scope="module")
def base(prob):
    """One float64 SAM sweep shared by the tests (compiled once; later sweeps of this shape reuse it)."""
    with float64():
        return sam_theory.sweep(prob, "sam", GRID, steps=12, batch_size=4, log_every=5, progress=False)


def test_exported_name_is_the_function():
    assert callable(sam_theory.sweep) and sam_theory.sweep is sweep_module.sweep


def test_shapes_axes_and_sel(base):
    res = base
    assert isinstance(res, SweepResult) and res.method == "sam"
    assert res.axes == ("lr", "rho", "seed") and res.shape == (2, 3, 2)
    np.testing.assert_array_equal(res.steps, [0, 5, 10, 12])
    assert res.losses.shape == res.test_losses.shape == res.grad_norms.shape == (2, 3, 2, 4)
    assert res.diverged.shape == res.diverged_at.shape == (2, 3, 2) and res.test_accuracy is None
    assert not res.diverged.any() and (res.diverged_at == -1).all()
    sub = res.sel(lr=0.5, rho=0.05)
    assert sub.axes == ("seed",) and sub.losses.shape == (2, 4)
    np.testing.assert_array_equal(sub.losses, res.losses[1, 1])
    np.testing.assert_array_equal(res.sel(seed=1).final_losses, res.losses[:, :, 1, -1])
    d = res.to_dict()
    assert d["axes"] == ["lr", "rho", "seed"] and d["coords"]["rho"] == [0.0, 0.05, 0.1]
    with pytest.raises(ValueError, match="lr=0.3"):
        res.sel(lr=0.3)
    with pytest.raises(ValueError, match="unknown axis 'm'"):
        res.sel(m=1)


def test_member_equals_direct_train(prob, base, x64):
    """Every member reproduces train(problem, sam(lr, rho), key=jax.random.key(seed)) to 1e-12 in float64."""
    for lr, rho, seed in [(0.5, 0.05, 1), (0.1, 0.0, 0), (0.5, 0.1, 0)]:
        h = train(prob, sam(lr, rho), steps=12, batch_size=4, key=jax.random.key(seed), log_every=5,
                  track_grad_norm=True)
        member = base.sel(lr=lr, rho=rho, seed=seed)
        for got, ref in [(member.losses, h.losses), (member.test_losses, h.test_losses),
                         (member.grad_norms, h.grad_norms)]:
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name, kwargs", [("fsam", {}), ("nsam", {"source": "independent_batch"}),
                                          ("lightsam", {"variant": "adam"})])
def test_stateful_and_extra_batch_methods_match_train(prob, x64, name, kwargs):
    """Methods with state (F-SAM momentum, Adam moments) or an independent batch ξ′ also equal `train`."""
    res = sam_theory.sweep(prob, name, {"lr": [0.1, 0.3], "rho": [0.05], "seed": [1]}, steps=8, batch_size=4,
                           progress=False, **kwargs)
    h = train(prob, getattr(sam_theory.optim, name)(0.3, 0.05, **kwargs), steps=8, batch_size=4,
              key=jax.random.key(1))
    np.testing.assert_allclose(res.sel(lr=0.3, rho=0.05, seed=1).losses, h.losses, rtol=1e-12, atol=0)


def test_msam_member_equals_train_with_fixed_option(prob, x64):
    res = sam_theory.sweep(prob, "msam", {"lr": [0.4], "rho": [0.05, 0.2]}, m=2, steps=10, batch_size=4,
                           progress=False)
    h = train(prob, msam(0.4, 0.2, m=2), steps=10, batch_size=4, key=jax.random.key(0))
    np.testing.assert_allclose(res.sel(lr=0.4, rho=0.2).losses, h.losses, rtol=1e-12, atol=0)


def test_keep_params_and_test_accuracy_of_a_classifier(x64):
    """Logistic two-layer net: final params (leading grid shape) and test accuracy match a direct train call."""
    from sam_theory.problems import two_layer_net
    net = two_layer_net(16, 3, 4, loss="logistic", n_test=40, seed=1)
    res = sam_theory.sweep(net, "sam", {"lr": [0.5, 1.0], "seed": [0, 2]}, rho=0.05, steps=6, batch_size=4,
                           keep_params=True, progress=False)
    assert res.test_accuracy.shape == (2, 2) and res.params["W"].shape == (2, 2, 4, 3)
    h = train(net, sam(1.0, 0.05), steps=6, batch_size=4, key=jax.random.key(2))
    member = res.sel(lr=1.0, seed=2)
    np.testing.assert_allclose(member.params["W"], h.params["W"], rtol=1e-12, atol=1e-15)
    assert member.test_accuracy == float(net.test_accuracy(h.params))


def test_diverging_member_is_masked_and_never_poisons_others(prob, x64):
    """lr = 60 ≫ 2/λ_max diverges: flagged, NaN after the step it diverged, the others bit-for-bit unchanged."""
    kw = dict(steps=40, batch_size=16, log_every=2, progress=False, rho=0.05)
    bad = sam_theory.sweep(prob, "sam", {"lr": [0.3, 60.0, 0.6], "seed": [0, 1]}, **kw)
    good = sam_theory.sweep(prob, "sam", {"lr": [0.3, 0.45, 0.6], "seed": [0, 1]}, **kw)  # same compiled shape
    assert good.info["compiles"] == 0 and not good.diverged.any()
    assert bad.diverged[1].all() and not bad.diverged[[0, 2]].any()
    at = bad.diverged_at[1]
    assert (at > 0).all() and (at <= 40).all()
    t = bad.steps
    for s in range(2):
        row = bad.losses[1, s]
        assert np.isfinite(row[t < at[s]]).all() and np.isnan(row[t >= at[s]]).all()
        assert np.isnan(bad.grad_norms[1, s, t >= at[s]]).all()
    np.testing.assert_array_equal(bad.losses[[0, 2]], good.losses[[0, 2]])
    np.testing.assert_array_equal(bad.grad_norms[[0, 2]], good.grad_norms[[0, 2]])


def test_chunks_reuse_one_compile_and_match_unchunked(prob, base, x64):
    many = sam_theory.sweep(prob, "sam", GRID, steps=12, batch_size=4, log_every=5, progress=False, chunk_size=5)
    assert many.info["chunks"] == 3 and many.info["chunks_computed"] == 3 and many.info["compiles"] == 1
    np.testing.assert_allclose(many.losses, base.losses, rtol=1e-13, atol=0)


def test_resume_skips_finished_chunks(prob, base, x64, tmp_path, monkeypatch):
    """A sweep killed after its first chunk resumes from disk and computes only the missing chunks."""
    kw = dict(steps=12, batch_size=4, log_every=5, chunk_size=4, progress=False, out_dir=tmp_path)
    full = sam_theory.sweep(prob, "sam", GRID, **{**kw, "out_dir": None})
    np.testing.assert_allclose(full.losses, base.losses, rtol=1e-13, atol=0)
    real_write, calls = store_module.write_chunk, []

    def dying_write(path, arrays):
        calls.append(path.name)
        if len(calls) == 2:  # killed while writing the second chunk: a partial temporary file, no chunk file
            path.with_name(path.name + ".123.tmp").write_bytes(b"partial")
            raise KeyboardInterrupt
        real_write(path, arrays)

    monkeypatch.setattr(store_module, "write_chunk", dying_write)
    with pytest.raises(KeyboardInterrupt):
        sam_theory.sweep(prob, "sam", GRID, **kw)
    assert sorted(p.name for p in tmp_path.glob("chunk_*.npz")) == ["chunk_00000.npz"]
    assert [p.name for p in tmp_path.glob("*.tmp")] == ["chunk_00001.npz.123.tmp"]
    monkeypatch.setattr(store_module, "write_chunk", real_write)
    res = sam_theory.sweep(prob, "sam", GRID, **kw)
    assert not list(tmp_path.glob("*.tmp"))  # the stale temporary file is removed at start
    assert res.info["chunks"] == 3 and res.info["chunks_loaded"] == 1 and res.info["chunks_computed"] == 2
    np.testing.assert_array_equal(res.losses, full.losses)
    assert sorted(p.name for p in tmp_path.glob("chunk_*.npz")) == [f"chunk_{i:05d}.npz" for i in range(3)]
    again = sam_theory.sweep(prob, "sam", GRID, **kw)  # everything on disk: no work redone
    assert again.info["chunks_computed"] == 0 and again.info["chunks_loaded"] == 3
    np.testing.assert_array_equal(again.losses, full.losses)
    with pytest.raises(ValueError, match="out_dir.*differs in settings.steps"):  # a different sweep, same folder
        sam_theory.sweep(prob, "sam", GRID, **{**kw, "steps": 11})


def test_resume_refuses_other_data_and_other_constructor_arguments(prob, tmp_path):
    """The manifest identifies the problem by content (issue 13): other data or another weight-decay flag in the
    same out_dir is refused, naming the differing fields; the same problem rebuilt from its arguments resumes."""
    from sam_theory.problems import LinearRegression, diagonal_linear_net
    kw = dict(steps=3, batch_size=4, progress=False, out_dir=tmp_path / "lr")
    sam_theory.sweep(prob, "sam", {"lr": [0.1], "rho": [0.05]}, **kw)
    other = LinearRegression(prob.X, 2 * prob.y, seed=0, test_data=prob.test_data)  # same describe(), other y
    assert other.describe() == prob.describe()
    with pytest.raises(ValueError, match=r"differs in .*problem\.data.*problem\.y"):
        sam_theory.sweep(other, "sam", {"lr": [0.1], "rho": [0.05]}, **kw)
    again = sam_theory.sweep(linear_regression(n=16, p=40, seed=0), "sam", {"lr": [0.1], "rho": [0.05]}, **kw)
    assert again.info["chunks_loaded"] == 1
    kw = dict(steps=3, batch_size=4, progress=False, out_dir=tmp_path / "wd")
    net = lambda flag: diagonal_linear_net(n=8, d=6, k=2, n_test=0, weight_decay=0.1, perturb_weight_decay=flag)
    sam_theory.sweep(net(False), "sam", {"lr": [0.1], "rho": [0.05]}, **kw)
    with pytest.raises(ValueError, match=r"differs in problem\.perturb_weight_decay; use a new out_dir"):
        sam_theory.sweep(net(True), "sam", {"lr": [0.1], "rho": [0.05]}, **kw)
    with pytest.raises(ValueError, match=r"differs in method_kwargs\.eps"):  # an optimizer option
        sam_theory.sweep(net(False), "sam", {"lr": [0.1], "rho": [0.05]}, eps=1e-6, **kw)


def test_corrupt_chunk_is_named_moved_aside_and_recomputed(prob, tmp_path):
    kw = dict(steps=4, batch_size=4, progress=False, out_dir=tmp_path, chunk_size=2)
    grid = {"lr": [0.1, 0.2, 0.3], "rho": [0.05]}
    first = sam_theory.sweep(prob, "sam", grid, **kw)
    path = tmp_path / "chunk_00001.npz"
    path.write_bytes(path.read_bytes()[:50])  # truncated: not a readable zip any more
    with pytest.warns(RuntimeWarning, match="chunk_00001.npz.*corrupt.*moved to 'chunk_00001.npz.corrupt'"):
        res = sam_theory.sweep(prob, "sam", grid, **kw)
    assert res.info["chunks_loaded"] == 1 and res.info["chunks_computed"] == 1
    assert (tmp_path / "chunk_00001.npz.corrupt").exists() and path.exists()
    np.testing.assert_array_equal(res.losses, first.losses)


@pytest.mark.parametrize("grid, kwargs, match", [
    ({"lr": [0.1], "gamma": [1.0]}, {}, "grid has unknown key 'gamma'"),
    ({"lr": [], "rho": [0.1]}, {}, r"grid\['lr'\] is empty"),
    ({"lr": [0.1], "seed": [0.5]}, {}, r"grid\['seed'\]"),
    ({"lr": [0.1, -1.0], "rho": [0.1]}, {}, "lr must be > 0"),
    ({"lr": [0.1], "rho": [0.1]}, {"rho": 0.2}, "grid key 'rho' is also given"),
    ({"lr": [0.1], "rho": [0.1]}, {"batch_size": 17}, "batch_size=17 exceeds n=16"),
    ({"lr": [0.1], "rho": [0.1]}, {"steps": -1}, "steps must be >= 0"),
    ({"lr": [0.1], "rho": [0.1]}, {"chunk_size": 0}, "chunk_size must be >= 1"),
    ({}, {}, "grid must be a non-empty dict"),
])
def test_validation_errors_name_the_argument(prob, grid, kwargs, match):
    kw = {"steps": 5, "batch_size": 4, "progress": False} | kwargs
    with pytest.raises(ValueError, match=match):
        sam_theory.sweep(prob, "sam", grid, **kw)


def test_static_option_and_unknown_method_are_rejected(prob):
    with pytest.raises(ValueError, match="static options"):
        sam_theory.sweep(prob, msam, {"lr": [0.1], "rho": [0.1], "m": [1, 2]}, steps=2, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="method 'adamw'"):
        sam_theory.sweep(prob, "adamw", {"lr": [0.1]}, steps=2, batch_size=4, progress=False)


def _passes(name):
    from sam_theory.checks import Context, run_check, select
    (check,) = select(name.replace(".", r"\.") + "$")
    record, data = run_check(check, Context(quick=True, seed=0))
    assert record["passed"], record["detail"]
    return record, data


def test_msharpness_trend_check_passes_quick():
    record, data = _passes("msharpness.smaller_m_flatter")
    assert record["measured"] > record["bound"] and data["m"] == [1, 5, 20]


@pytest.mark.slow
def test_lightsam_check_passes_quick(tmp_path):
    from sam_theory.plots import render_check_figure
    record, data = _passes("lightsam.no_divergence_grid")
    assert data["light_div"].max() == 0 and data["sam_div"][-1].min() == 1
    assert render_check_figure("lightsam.no_divergence_grid", data, tmp_path).exists()
