import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory import train
from sam_theory.checks import REGISTRY, Context, run_check
from sam_theory.optim import sam
from sam_theory.problems import (PRUNERS, diagonal_linear_net, make_mask, matrix_factorization, relu_1d,
                                 two_layer_net)
from sam_theory.problems.relu_1d import X_1D, Y_1D


@pytest.mark.parametrize("parameterization, act", [("standard", "relu"), ("ntk", "tanh"), ("mean_field", "gelu"),
                                                   ("standard", "softplus")])
def test_two_layer_shapes_and_forward(parameterization, act, x64):
    prob = two_layer_net(30, 5, 7, activation=act, parameterization=parameterization, n_test=40, seed=1)
    params = prob.init(jax.random.key(0))
    assert params["W"].shape == (7, 5) and params["v"].shape == (7,)
    assert prob.num_params == 7 * 6 == prob.num_effective_params
    X, y = prob.data
    assert X.shape == (30, 5) and y.shape == (30,) and prob.test_data[0].shape == (40, 5)
    s_in, s_out = {"standard": (1, 1), "ntk": (1 / np.sqrt(5), 1 / np.sqrt(7)),
                   "mean_field": (1 / np.sqrt(5), 1 / 7)}[parameterization]
    act_np = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "softplus": lambda z: np.log1p(np.exp(z)),
              "gelu": lambda z: np.asarray(jax.nn.gelu(z))}[act]
    W, v = np.asarray(params["W"]), np.asarray(params["v"])
    f = s_out * act_np(s_in * X @ W.T) @ v
    np.testing.assert_allclose(prob.losses(params), 0.5 * (f - y) ** 2, rtol=1e-10)


def test_two_layer_init_variances(x64):
    for par, (vw, vv) in {"standard": (1 / 50, 1 / 400), "ntk": (1, 1), "mean_field": (1, 1)}.items():
        prob = two_layer_net(5, 50, 400, parameterization=par, n_test=0)
        p = prob.init(jax.random.key(3))
        assert np.var(p["W"]) == pytest.approx(vw, rel=0.05) and np.var(p["v"]) == pytest.approx(vv, rel=0.2)


def test_teacher_interpolates_and_noise_is_train_only(x64):
    prob = two_layer_net(20, 4, 4, teacher_width=4, n_test=50, seed=0)
    star = prob.teacher_as_student()
    assert prob.interpolates(star, tol=1e-25) and prob.test_loss(star) < 1e-25
    noisy = two_layer_net(20, 4, 4, teacher_width=4, label_noise=0.3, n_test=50, seed=0)
    assert not noisy.interpolates(noisy.teacher_as_student()) and noisy.test_loss(noisy.teacher_as_student()) < 1e-25
    lin = two_layer_net(20, 4, 8, teacher="linear", n_test=10, seed=0)
    np.testing.assert_allclose(lin.data[1], lin.data[0] @ lin.teacher_params["theta"] / 2.0, rtol=1e-12)
    with pytest.raises(ValueError, match="teacher_as_student"):
        lin.teacher_as_student()


def test_logistic_labels_flips_and_accuracy(x64):
    prob = two_layer_net(200, 4, 4, loss="logistic", label_noise=0.1, n_test=300, seed=0)
    X, y = prob.data
    assert set(np.unique(y)) <= {-1.0, 1.0} and prob.flipped.size == 20
    star = prob.teacher_as_student()
    clean = two_layer_net(200, 4, 4, loss="logistic", n_test=300, seed=0)
    assert np.sum(clean.data[1] != y) == 20  # exactly the flipped fraction
    assert float(prob.test_accuracy(star)) == 1.0  # the teacher is perfect on clean test labels
    assert clean.interpolates(star) and not prob.interpolates(star)
    lx = np.log1p(np.exp(-y * np.asarray(jax.vmap(lambda x: prob.forward(star, x))(X))))
    np.testing.assert_allclose(prob.losses(star), lx, rtol=1e-10)
    with pytest.raises(ValueError, match="classification"):
        two_layer_net(10, 3, 3).test_accuracy(two_layer_net(10, 3, 3).init(jax.random.key(0)))


def test_diagonal_net_forms(x64):
    prob = diagonal_linear_net(seed=0)
    assert (prob.n, prob.d, prob.k, prob.num_params) == (20, 30, 3, 60)
    assert np.count_nonzero(prob.theta_star) == 3 and np.linalg.norm(prob.theta_star) == pytest.approx(1.0)
    p0 = prob.init(None)
    np.testing.assert_array_equal(p0["u"], 0.1) and np.testing.assert_array_equal(p0["v"], 0.0)
    assert prob.interpolates(prob.interpolating_params(), tol=1e-25)
    for form, depth in [("u2-v2", 2), ("u2-v2", 3), ("uv", 3)]:
        q = diagonal_linear_net(form=form, depth=depth, seed=0)
        np.testing.assert_allclose(q.beta(q.init(None)), 0.0, atol=0)
        assert q.interpolates(q.interpolating_params(), tol=1e-25)
    # test loss is ½E(xᵀ(β − θ★))² ≈ ½‖β − θ★‖² for x ~ N(0, I)
    assert float(prob.test_loss(p0)) == pytest.approx(0.5, rel=0.1)


def test_matrix_factorization(x64):
    prob = matrix_factorization(6, 5, 2, 4, init_scale=0.1, seed=0)
    assert prob.n == 30 and prob.num_params == (6 + 5) * 4
    p = prob.init(jax.random.key(0))
    resid = np.asarray(p["U"] @ p["V"].T) - prob.M_star
    assert float(prob.loss(p)) == pytest.approx(0.5 * np.sum(resid**2) / 30, rel=1e-12)
    assert prob.interpolates(prob.interpolating_params(), tol=1e-25)
    comp = matrix_factorization(10, 10, 2, 3, init_scale=0.1, observed=0.6, seed=0)
    assert comp.n == 60 and comp.test_data[0].size == 40


def test_relu_1d():
    prob = relu_1d(10)
    np.testing.assert_allclose(prob.data[0], [(-5.5 + i) / 4 + 0.07 for i in range(12)])
    np.testing.assert_allclose(Y_1D[:3], [-1.655, 1.845, 0.345])
    assert prob.num_params == 31 and relu_1d(100).num_params == 301 and X_1D.size == 12
    x, y = prob.test_data
    assert x.size == 200 and x[0] == X_1D[0] and x[-1] == X_1D[-1]
    np.testing.assert_allclose(y[[0, -1]], Y_1D[[0, -1]])
    with pytest.raises(ValueError, match="test_data"):
        relu_1d(10, n_test=0).test_loss(prob.init(jax.random.key(0)))


@pytest.mark.parametrize("pruner", PRUNERS)
def test_masks_keep_fraction_and_masked_weights_stay_zero_under_sam(pruner, x64):
    prob = two_layer_net(32, 4, 16, sparsity=0.75, pruner=pruner, weight_decay=1e-3, n_test=0, seed=2)
    assert prob.num_params == 80 and prob.num_effective_params == 20
    h = train(prob, sam(0.1, 0.05), steps=100, batch_size=8, key=jax.random.key(0))
    masked = [np.asarray(p)[np.asarray(m) == 0] for p, m in zip(jax.tree.leaves(h.params), jax.tree.leaves(prob.mask))]
    assert all(np.all(x == 0.0) for x in masked)  # exactly zero after 100 SAM steps
    kept = [np.asarray(p)[np.asarray(m) == 1] for p, m in zip(jax.tree.leaves(h.params), jax.tree.leaves(prob.mask))]
    assert np.count_nonzero(np.concatenate(kept)) == 20 and h.losses[-1] < h.losses[0]


def test_magnitude_mask_keeps_largest():
    ref = {"a": np.array([3.0, -0.1, 0.5]), "b": np.array([[-4.0, 0.2]])}
    m = make_mask(ref, 0.6, "magnitude")
    np.testing.assert_array_equal(m["a"], [1, 0, 0]) and np.testing.assert_array_equal(m["b"], [[1, 0]])


def test_weight_decay_enters_the_step(x64):
    base = two_layer_net(16, 3, 5, n_test=0, seed=0)
    wd = two_layer_net(16, 3, 5, n_test=0, seed=0, weight_decay=0.1)
    ha = train(base, sam(0.1, 0.05), steps=5, batch_size=16, key=jax.random.key(0))
    hb = train(wd, sam(0.1, 0.05), steps=5, batch_size=16, key=jax.random.key(0))
    sq = lambda t: sum(float(jnp.vdot(x, x)) for x in jax.tree.leaves(t))
    assert sq(hb.params) < sq(ha.params)
    assert float(wd.penalty(ha.params)) == pytest.approx(0.05 * sq(ha.params), rel=1e-12)


@pytest.mark.parametrize("make, kwargs, name", [
    (two_layer_net, dict(n=10, d=3, width=0), "width"), (two_layer_net, dict(n=10, d=3, width=4, activation="elu"),
                                                         "activation"),
    (two_layer_net, dict(n=10, d=3, width=4, teacher="quad"), "teacher"),
    (two_layer_net, dict(n=10, d=3, width=4, loss="hinge"), "loss"),
    (two_layer_net, dict(n=10, d=3, width=4, parameterization="mup"), "parameterization"),
    (two_layer_net, dict(n=10, d=3, width=4, sparsity=1.0), "sparsity"),
    (two_layer_net, dict(n=10, d=3, width=4, sparsity=-0.1), "sparsity"),
    (two_layer_net, dict(n=10, d=3, width=4, sparsity=0.5, pruner="lottery"), "pruner"),
    (two_layer_net, dict(n=10, d=3, width=4, label_noise=-1.0), "label_noise"),
    (two_layer_net, dict(n=0, d=3, width=4), "n"),
    (diagonal_linear_net, dict(d=5, k=6), "k"), (diagonal_linear_net, dict(form="uvw"), "form"),
    (diagonal_linear_net, dict(alpha=0.0), "alpha"), (diagonal_linear_net, dict(depth=1), "depth"),
    (matrix_factorization, dict(rows=5, cols=5, rank_star=3, rank=2, init_scale=0.1), "rank"),
    (matrix_factorization, dict(rows=5, cols=5, rank_star=1, rank=2, init_scale=0.0), "init_scale"),
    (relu_1d, dict(width=0), "width"),
])
def test_bad_arguments(make, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make(**kwargs)


@pytest.mark.parametrize("name", ["problems.diag_net_hessian_closed_form",
                                  "problems.gauss_newton_equals_hessian_at_interpolation",
                                  "problems.finite_difference_gradients"])
def test_problem_checks_pass(name):
    record, _ = run_check(REGISTRY[name], Context(quick=True))
    assert record["passed"], record["detail"]


@pytest.mark.parametrize("perturb", [False, True])
def test_weight_decay_perturbation_flag_matches_hand_step(perturb, x64):
    """One full-batch SAM step: ε from ∇f (+ λx if perturbed); descent ∇f(x+ε) + λ·(x+ε if perturbed else x)."""
    prob = two_layer_net(16, 3, 5, n_test=0, seed=0, weight_decay=0.5, perturb_weight_decay=perturb)
    x = prob.init(jax.random.key(1))
    lr, rho, lam = 0.1, 0.2, 0.5
    g = jax.grad(prob.loss)(x)
    if perturb:
        g = jax.tree.map(lambda a, b: a + lam * b, g, x)
    norm = jnp.sqrt(sum(jnp.vdot(a, a) for a in jax.tree.leaves(g)))
    xe = jax.tree.map(lambda a, b: a + rho * b / (norm + 1e-12), x, g)
    ge = jax.grad(prob.loss)(xe)
    expected = jax.tree.map(lambda a, b, c: a - lr * (b + lam * c), x, ge, xe if perturb else x)
    h = train(prob, sam(lr, rho), steps=1, batch_size=16, key=jax.random.key(0), params=x)
    for a, b in zip(jax.tree.leaves(h.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


def test_linear_regression_builds_its_test_set_only_when_asked():
    """linear_regression(n, p) does not allocate the n_test × p test set until test_data is read; the lazily
    drawn set is the one the same seed always gave (it continues the data's random stream)."""
    from sam_theory.problems import linear_regression
    big = linear_regression(4, 10**6, seed=0)
    assert big._test_data is None  # nothing of size 1000 × 10⁶ was built
    prob = linear_regression(5, 7, seed=3)
    X, y = prob.test_data
    rng = np.random.default_rng(3)
    rng.standard_normal((5, 7)); w = rng.standard_normal(7); rng.standard_normal(5)
    np.testing.assert_array_equal(X, rng.standard_normal((1000, 7)) / np.sqrt(7))
    np.testing.assert_allclose(y, X @ w)
    assert linear_regression(5, 7, n_test=0).test_data[0].shape == (0, 7)
