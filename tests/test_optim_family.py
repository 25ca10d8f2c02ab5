"""The SAM family (THEORY.md §2) on the generic perturb-then-descend step: each method against a hand-written NumPy
reference on linear regression (closed-form gradients a_i(a_iᵀw − y_i)), base optimizers against optax applied to
the hand-computed descent gradient, input validation, no NaN at a stationary point, vmap over hyperparameters,
determinism and the trainer."""
import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sam_theory import train
from sam_theory.optim import (Batch, asam, fsam, lightsam, msam, nsam, rwsam, sam, sgd, usam)
from sam_theory.precision import float64
from sam_theory.problems import as_jax, linear_regression

LR, RHO, DELTA = 0.3, 0.05, 1e-12
N, P = 8, 12


@pytest.fixture
def lin(x64):
    prob = linear_regression(N, P, seed=3)
    X, y = prob.X, prob.y
    grad = lambda v: X.T @ (X @ v - y) / N
    w = np.asarray(jax.random.normal(jax.random.key(1), (P,)))
    return prob, Batch(as_jax(prob.data), prob.batch_loss), w, grad


def _run(opt, w, batch, steps):
    params, state = jnp.asarray(w), opt.init(jnp.asarray(w))
    out = []
    for _ in range(steps):
        params, state = opt.step(params, state, batch, jax.random.key(0))
        out.append(np.asarray(params))
    return out


def test_asam_formula(lin):
    prob, batch, w, grad = lin
    kappa = 0.2
    g = grad(w)
    t = np.abs(w) + kappa
    eps = RHO * t**2 * g / (np.linalg.norm(t * g) + DELTA)
    (got,) = _run(asam(LR, RHO, kappa), w, batch, 1)
    np.testing.assert_allclose(got, w - LR * grad(w + eps), rtol=1e-13)


def test_fsam_formula_three_steps(lin):
    """d_t = g − σ m_{t−1} uses the previous m; then m_t = λ m_{t−1} + (1−λ) g (THEORY.md §2)."""
    prob, batch, w, grad = lin
    sigma, lmbda = 0.7, 0.8
    got = _run(fsam(LR, RHO, sigma, lmbda), w, batch, 3)
    x, m = w.copy(), np.zeros(P)
    for row in got:
        g = grad(x)
        d = g - sigma * m
        m = lmbda * m + (1 - lmbda) * g
        x = x - LR * grad(x + RHO * d / (np.linalg.norm(d) + DELTA))
        np.testing.assert_allclose(row, x, rtol=1e-12)


def test_lightsam_adagrad_norm_three_steps(lin):
    prob, batch, w, grad = lin
    u0, v0 = 0.1, 0.2
    got = _run(lightsam(LR, RHO, "adagrad_norm", u0=u0, v0=v0), w, batch, 3)
    x, u, v = w.copy(), u0, v0
    for row in got:
        g = grad(x)
        u += g @ g
        gh = grad(x + RHO * g / (np.sqrt(u) + DELTA))
        v += gh @ gh
        x = x - LR * gh / (np.sqrt(v) + DELTA)
        np.testing.assert_allclose(row, x, rtol=1e-12)


def test_lightsam_adagrad_three_steps(lin):
    prob, batch, w, grad = lin
    got = _run(lightsam(LR, RHO, "adagrad", u0=0.05, v0=0.0), w, batch, 3)
    x, u, v = w.copy(), np.full(P, 0.05), np.zeros(P)
    for row in got:
        g = grad(x)
        u = u + g * g
        gh = grad(x + RHO * g / (np.sqrt(u) + DELTA))
        v = v + gh * gh
        x = x - LR * gh / (np.sqrt(v) + DELTA)
        np.testing.assert_allclose(row, x, rtol=1e-12)


def test_lightsam_adam_three_steps(lin):
    prob, batch, w, grad = lin
    b1, b2, d = 0.8, 0.9, 1e-8
    got = _run(lightsam(LR, RHO, "adam", b1=b1, b2=b2, eps=d), w, batch, 3)
    x = w.copy()
    ma, va, md, vd = (np.zeros(P) for _ in range(4))
    for t, row in enumerate(got, start=1):
        g = grad(x)
        ma, va = b1 * ma + (1 - b1) * g, b2 * va + (1 - b2) * g * g
        eps = RHO * (ma / (1 - b1**t)) / (np.sqrt(va / (1 - b2**t)) + d)
        gh = grad(x + eps)
        md, vd = b1 * md + (1 - b1) * gh, b2 * vd + (1 - b2) * gh * gh
        x = x - LR * (md / (1 - b1**t)) / (np.sqrt(vd / (1 - b2**t)) + d)
        np.testing.assert_allclose(row, x, rtol=1e-12)


@pytest.mark.parametrize("proxy", ["grad_norm", "finite_difference"])
def test_rwsam_formula(lin, proxy):
    prob, batch, w, grad = lin
    X, y = prob.X, prob.y
    T, r = 0.3, 0.1
    G = X * (X @ w - y)[:, None]  # per-sample gradients, rows
    if proxy == "grad_norm":
        s = np.linalg.norm(G, axis=1)
    else:
        f = lambda v: 0.5 * (X @ v - y) ** 2
        shifted = w[None] + r * G / (np.linalg.norm(G, axis=1, keepdims=True) + DELTA)
        s = 0.5 * (np.einsum("ij,ij->i", X, shifted) - y) ** 2 - f(w)
    wts = np.exp((s - s.max()) / T)
    wts /= wts.sum()
    gw = wts @ G
    (got,) = _run(rwsam(LR, RHO, T, proxy, fd_radius=r), w, batch, 1)
    np.testing.assert_allclose(got, w - LR * grad(w + RHO * gw / (np.linalg.norm(gw) + DELTA)), rtol=1e-12)
    # control: the weighted perturbation differs from SAM's uniform one
    (plain,) = _run(sam(LR, RHO), w, batch, 1)
    assert np.max(np.abs(got - plain)) > 1e-6


@pytest.mark.parametrize("base, reference", [
    ("momentum", lambda: optax.sgd(LR, momentum=0.6)),
    ("adam", lambda: optax.adam(LR, b1=0.8, b2=0.95, eps=1e-8)),
])
def test_base_optimizer_gets_the_descent_gradient(lin, base, reference):
    """SAM with base momentum/Adam = that optax transform fed with ĝ = ∇f(x + ε), three steps."""
    prob, batch, w, grad = lin
    hp = {"momentum": {"momentum": 0.6}, "adam": {"b1": 0.8, "b2": 0.95, "adam_eps": 1e-8}}[base]
    got = _run(sam(LR, RHO, base=base, base_hparams=hp), w, batch, 3)
    tx = reference()
    x, state = jnp.asarray(w), tx.init(jnp.asarray(w))
    for row in got:
        g = grad(np.asarray(x))
        gh = grad(np.asarray(x) + RHO * g / (np.linalg.norm(g) + DELTA))
        u, state = tx.update(jnp.asarray(gh), state, x)
        x = optax.apply_updates(x, u)
        np.testing.assert_allclose(row, x, rtol=1e-12)


CONSTRUCTORS = {
    "sgd": lambda lr=LR, rho=None, **k: sgd(lr, **k),
    "sam": lambda lr=LR, rho=RHO, **k: sam(lr, rho, **k),
    "usam": lambda lr=LR, rho=RHO, **k: usam(lr, rho, **k),
    "msam": lambda lr=LR, rho=RHO, **k: msam(lr, rho, 2, **k),
    "nsam_full": lambda lr=LR, rho=RHO, **k: nsam(lr, rho, "full", **k),
    "nsam_indep": lambda lr=LR, rho=RHO, **k: nsam(lr, rho, "independent_batch", **k),
    "asam": lambda lr=LR, rho=RHO, **k: asam(lr, rho, **k),
    "fsam": lambda lr=LR, rho=RHO, **k: fsam(lr, rho, **k),
    "lightsam_adagrad_norm": lambda lr=LR, rho=RHO, **k: lightsam(lr, rho, "adagrad_norm", **k),
    "lightsam_adagrad": lambda lr=LR, rho=RHO, **k: lightsam(lr, rho, "adagrad", **k),
    "lightsam_adam": lambda lr=LR, rho=RHO, **k: lightsam(lr, rho, "adam", **k),
    "rwsam_grad_norm": lambda lr=LR, rho=RHO, **k: rwsam(lr, rho, 0.5, "grad_norm", **k),
    "rwsam_fd": lambda lr=LR, rho=RHO, **k: rwsam(lr, rho, 0.5, "finite_difference", **k),
}
PERTURBED = [name for name in CONSTRUCTORS if name != "sgd"]


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_bad_common_arguments(name):
    make = CONSTRUCTORS[name]
    for lr in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="lr"):
            make(lr=lr)
    if name != "sgd":
        with pytest.raises(ValueError, match="rho"):
            make(rho=-0.1)
    with pytest.raises(ValueError, match="base"):
        make(base="rmsprop")
    if name not in ("sgd", "usam"):  # the unnormalized methods have no guard δ
        with pytest.raises(ValueError, match="eps"):
            make(eps=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        make(base="momentum", base_hparams={"momentum": 1.5})
    with pytest.raises(ValueError, match="b1"):
        make(base="adam", base_hparams={"b1": -0.5})


@pytest.mark.parametrize("make, name", [
    (lambda: msam(0.1, 0.1, m=0), "m"), (lambda: msam(0.1, 0.1, m=2.5), "m"),
    (lambda: nsam(0.1, 0.1, source="half"), "source"), (lambda: asam(0.1, 0.1, kappa=-1.0), "kappa"),
    (lambda: fsam(0.1, 0.1, sigma=-1.0), "sigma"), (lambda: fsam(0.1, 0.1, lmbda=1.0), "lmbda"),
    (lambda: lightsam(0.1, 0.1, "rmsprop"), "variant"), (lambda: lightsam(0.1, 0.1, u0=-1.0), "u0"),
    (lambda: lightsam(0.1, 0.1, v0=-1.0), "v0"), (lambda: lightsam(0.1, 0.1, "adam", b2=1.0), "b2"),
    (lambda: rwsam(0.1, 0.1, temperature=0.0), "temperature"), (lambda: rwsam(0.1, 0.1, proxy="hessian"), "proxy"),
    (lambda: rwsam(0.1, 0.1, fd_radius=-1.0), "fd_radius"),
    (lambda: sam(0.1, 0.1, base="adam", base_hparams={"momentum": 0.9}), "base_hparams"),
])
def test_bad_method_arguments(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_m_not_dividing_batch_raises_at_trace_time(lin):
    prob, batch, w, grad = lin
    opt = msam(LR, RHO, m=3)  # valid on its own: b is only known when the step is traced
    with pytest.raises(ValueError, match="m=3"):
        opt.step(jnp.asarray(w), opt.init(jnp.asarray(w)), batch)


def test_nsam_without_its_data_raises(lin):
    prob, batch, w, grad = lin
    with pytest.raises(ValueError, match="full"):
        nsam(LR, RHO, "full").step(jnp.asarray(w), (), batch)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
@pytest.mark.parametrize("name", PERTURBED)
def test_no_nan_at_exact_stationary_point(name, dtype):
    """At an exact stationary point (labels y = 0 and w = 0, so every g_i = 0 in floating point) every method must
    return w unchanged (ε = 0 by the δ guard), not NaN, in every dtype: the default δ = 1e-12 rounds to 0 in
    float16, so the guard must be raised to a representable value (`optim.scaling.guard`)."""
    with float64() if dtype == "float64" else contextlib.nullcontext():
        dt = jnp.dtype(dtype)
        prob = linear_regression(N, 20, seed=0)
        data = (jnp.asarray(prob.X, dt), jnp.zeros(N, dt))
        batch = Batch(data, prob.batch_loss, full=data, extra=data)
        bases = ("sgd", "momentum", "adam", "adagrad_norm", "adagrad") if name == "sam" else (None,)
        for base in bases:  # LightSAM's default base is its adaptive descent (AdaGrad-Norm, AdaGrad or Adam)
            opt = CONSTRUCTORS[name](**({} if base is None else {"base": base}))
            w = jnp.zeros(20, dt)
            new, state = opt.step(w, opt.init(w), batch, jax.random.key(0))
            assert all(np.all(np.isfinite(np.asarray(s, np.float64))) for s in jax.tree.leaves(state)), base
            assert new.dtype == dt
            np.testing.assert_array_equal(np.asarray(new, np.float64), np.zeros(20))


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_vmap_over_hyperparameters(name, lin):
    """An optimizer built inside vmap (traced lr, rho) gives, row by row, the scalar optimizer's step."""
    prob, batch, w, grad = lin
    batch = Batch(batch.examples, batch.loss_fn, full=batch.examples, extra=batch.examples)
    lrs, rhos = jnp.array([0.1, 0.2, 0.3]), jnp.array([0.01, 0.05, 0.1])
    make = CONSTRUCTORS[name]

    def two_steps(lr, rho):
        opt = make(lr=lr, rho=rho, base="momentum")
        x, s = opt.step(jnp.asarray(w), opt.init(jnp.asarray(w)), batch, jax.random.key(0))
        return opt.step(x, s, batch, jax.random.key(1))[0]

    out = jax.jit(jax.vmap(two_steps))(lrs, rhos)
    for i in (0, 2):
        np.testing.assert_allclose(out[i], two_steps(float(lrs[i]), float(rhos[i])), rtol=1e-12)


def test_vmap_over_an_optimizer_pytree(lin):
    """An Optimizer with array leaves is itself the vmapped argument (hparams are its pytree leaves)."""
    prob, batch, w, grad = lin
    opt = fsam(jnp.array([0.1, 0.2]), jnp.array([0.05, 0.1]), sigma=jnp.array([0.5, 1.0]), lmbda=0.9,
               base="adam")
    axes = jax.tree.map(lambda x: 0 if np.ndim(x) else None, opt)
    out = jax.vmap(lambda o: o.step(jnp.asarray(w), o.init(jnp.asarray(w)), batch)[0], in_axes=(axes,))(opt)
    ref = fsam(0.2, 0.1, sigma=1.0, lmbda=0.9, base="adam")
    np.testing.assert_allclose(out[1], ref.step(jnp.asarray(w), ref.init(jnp.asarray(w)), batch)[0], rtol=1e-12)


@pytest.mark.parametrize("name", [n for n in CONSTRUCTORS if n not in ("sgd", "sam", "usam", "msam", "nsam_full",
                                                                         "nsam_indep")])
def test_train_runs_every_method_deterministically(name):
    """train() runs each new method; same key ⇒ same run; the loss drops. (sgd, sam, usam: tests/test_train.py;
    msam and nsam with needs=("full",)/("extra",): tests/test_optim_msam.py — same generic step.)"""
    prob = linear_regression(16, 40, seed=0)
    opt = CONSTRUCTORS[name](lr=0.5 if "lightsam" not in name else 0.2)
    runs = [train(prob, opt, steps=60, batch_size=4, key=jax.random.key(3), log_every=20) for _ in range(2)]
    assert not runs[0].diverged and runs[0].losses[-1] < 0.5 * runs[0].losses[0], runs[0].losses
    np.testing.assert_array_equal(runs[0].losses, runs[1].losses)
