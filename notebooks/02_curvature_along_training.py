# %% [markdown]
# # 02 · Curvature along training: λ_max, tr H^k, s_k and the spectral density as SGD and SAM train
#
# THEORY.md §4: at a point x, H = ∇²f(x), S_k = E_ξ[H_ξ^k] − H^k, a = λ_max(H), s_k = λ_max(S_k)^{1/k}. We train a
# two-layer ReLU net (p = 192) with SGD and with SAM from the same init and batches, and measure the curvature every
# 200 steps *inside the compiled training run*: `run_many(..., observe=curvature, every=200)` calls the pure function
# `curvature(x_t, member)` at t = 0, 200, …, 1000 within its `lax.scan` and returns the records stacked over t. The
# observable is dense (p is small): the per-example Hessians H_i, the eigenvalues of H = (1/n) Σ_i H_i for a and
# tr H^k = Σ_j λ_j^k, and S_k for batches of size b = 1 by set partitions (`stochastic_moment`). At the end points it
# must agree with the library's own `hessian_moments` (outside the run) and with matrix-free Lanczos and SLQ.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from sam_theory import float64
from sam_theory.curvature import (BatchCurvature, batch_distribution, eigvalsh, flat_fn, hessian, hessian_moments,
                                  hvp, spectral_density, stochastic_moment, top_eigenvalues)
from sam_theory.optim import sam, sgd
from sam_theory.problems import two_layer_net
from sam_theory.train import log_steps, run_many

STEPS, EVERY, ORDERS = 1000, 200, (1, 2, 3, 4)


def curvature(x, member):
    """a = λ_max(H), tr H^k (k = 1…4) and s_k = λ_max(S_k)^{1/k} (k = 2, 3, 4; b = 1) at x: pure, traced once."""
    def hessian_i(example):  # ∇²f_i over the raveled parameters
        f, flat = flat_fn(lambda p: member.problem.per_example_loss(p, example), x)
        return jax.hessian(f)(flat)

    Hi = jax.vmap(hessian_i)(member.data)
    Hi = 0.5 * (Hi + jnp.swapaxes(Hi, 1, 2))
    n, p = Hi.shape[:2]
    curv = BatchCurvature(None, Hi, batch_distribution(n, batch_size=1), p, Hi.dtype)
    ev = eigvalsh(jnp.mean(Hi, axis=0))
    out = {"a": ev[-1], **{f"tr{k}": jnp.sum(ev**k) for k in ORDERS}}
    for k in ORDERS[1:]:
        S = stochastic_moment(curv, k)
        top = eigvalsh(0.5 * (S + S.T))[-1]
        out[f"s{k}"] = jnp.sign(top) * jnp.abs(top) ** (1.0 / k)  # real k-th root (S_3 may be indefinite)
    return out


# %%
runs = {}
with float64():
    prob = two_layer_net(n=40, d=5, width=32, seed=0)
    x0 = prob.init(jax.random.key(1000))
    for opt in (sgd(0.2), sam(0.2, 0.1)):  # same x0, same batches (one key): only the update differs
        runs[opt.name] = run_many(prob, opt, jax.random.key(1001), params=x0, observe=curvature, every=EVERY,
                                  steps=STEPS, batch_size=8)
t = log_steps(STEPS, EVERY)
curves = {name: {"loss": np.asarray(out.losses), **{k: np.asarray(v) for k, v in out.observed.items()}}
          for name, out in runs.items()}
for name, c in curves.items():
    print(name + (" (diverged)" if bool(runs[name].diverged) else ""))
    for i, step in enumerate(t):
        print(f"  t={step:5d} f={c['loss'][i]:.2e} a={c['a'][i]:.3f} trH={c['tr1'][i]:.3f} trH²={c['tr2'][i]:.3f} "
              f"s2={c['s2'][i]:.3f} s3={c['s3'][i]:.3f} s4={c['s4'][i]:.3f}")

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 3.5))
for color, (name, c) in zip(("C0", "C1"), curves.items()):
    axes[0].semilogy(t, c["loss"], "o-", color=color, label=name)
    axes[1].plot(t, c["a"], "o-", color=color, label=name)
    axes[2].plot(t, c["tr1"], "o-", color=color, label=name)
    for k, style in zip((2, 3, 4), ("o-", "s--", "^:")):
        axes[3].plot(t, c[f"s{k}"], style, color=color, label=f"{name} s{k}")
for ax, title in zip(axes, ("f(x_t)", "a = λ_max(H)", "tr H", "s_k = λ_max(S_k)^{1/k}, b = 1")):
    ax.set_title(title); ax.set_xlabel("step t"); ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## The observable against the library and against matrix-free estimates at the end points
#
# `hessian_moments` (per-example Hessians by `BatchCurvature.from_problem`, NumPy eigendecompositions, outside the
# compiled run) is an independent path to the last record of `curvature`: they must agree to round-off, which also
# checks that the last record is taken at the returned parameters x_T. Lanczos on the HVP operator (`hvp`, one
# linearization) gives λ_max, and the SLQ spectral density (Gaussian smoothing σ = 0.05) is drawn against the dense
# eigenvalues.

# %%
checks, ends = {}, {name: out.params for name, out in runs.items()}
with float64():
    eigs = {name: np.linalg.eigvalsh(np.asarray(hessian(prob.loss, x))) for name, x in ends.items()}
    grid = np.linspace(min(e[0] for e in eigs.values()) - 0.5, max(e[-1] for e in eigs.values()) + 0.5, 400)
    # one compile each, shared by both end points: the operator is built inside the jitted function
    lanczos_top = jax.jit(lambda x: top_eigenvalues(hvp(prob.loss, x), 1, key=jax.random.key(1002)).values[0])
    slq_density = jax.jit(lambda x: spectral_density(hvp(prob.loss, x), grid, sigma=0.05, num_probes=20, order=60,
                                                     key=jax.random.key(1003)).density)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, x in ends.items():
        ref = hessian_moments(BatchCurvature.from_problem(prob, x, batch_size=1, method="dense"))
        last = {k: float(v[-1]) for k, v in curves[name].items()}
        pairs = [(last["a"], ref.a)] + [(last[f"tr{k}"], ref.traces[k]) for k in ORDERS]
        pairs += [(last[f"s{k}"], ref.s[k]) for k in ORDERS[1:]]
        eig, top, dens = eigs[name], float(lanczos_top(x)), np.asarray(slq_density(x))
        mass = float(np.trapezoid(dens, grid))
        checks[name] = dict(observe_err=max(abs(o - r) / abs(r) for o, r in pairs), top_err=abs(top - eig[-1]) / eig[-1],
                            tr_err=abs(last["tr1"] - eig.sum()) / abs(eig.sum()), mass=mass)
        ax.semilogy(grid, np.maximum(dens, 1e-6), label=f"{name}: λ_max = {top:.3f}")
        print(f"{name}: observe vs hessian_moments max rel. err {checks[name]['observe_err']:.1e}; "
              f"Lanczos λ_max {top:.6f} vs dense {eig[-1]:.6f}; density mass {mass:.3f}")
ax.set_xlabel("eigenvalue"); ax.set_title("SLQ spectral density at the end point"); ax.legend();

# %% [markdown]
# ## What this notebook asserts
#
# S_2 = E_ξ[(H_ξ − H)²] is positive semidefinite, so s_2 ≥ 0 at every recorded step. Normalized SAM with a fixed ρ
# does not converge to an interpolating point (its perturbation ρ∇f/‖∇f‖ does not vanish there): its loss
# fluctuates around a ρ-dependent level, so its fit is asserted only as a tenfold decrease.

# %%
for name, c in checks.items():
    assert c["observe_err"] < 1e-10, (name, c)  # the in-run observable = hessian_moments at x_T (a, tr H^k, s_k)
    assert c["top_err"] < 1e-8, (name, c)  # Lanczos λ_max = dense λ_max
    assert c["tr_err"] < 1e-10, (name, c)  # tr H recorded in the run = sum of the dense eigenvalues at x_T
    assert 0.95 < c["mass"] < 1.05, (name, c)  # the smoothed density integrates to ≈ 1
for name, c in curves.items():
    assert not bool(runs[name].diverged), name
    assert c["loss"].shape == c["a"].shape == (len(t),) and np.isfinite(c["a"]).all(), name
    assert (c["s2"] >= -1e-10).all(), (name, c["s2"])  # S_2 ⪰ 0
for k in curves["sgd"]:  # same x0: the first records agree exactly
    assert curves["sgd"][k][0] == curves["sam"][k][0], k
end = {name: {k: v[-1] for k, v in c.items()} for name, c in curves.items()}
start = curves["sgd"]["loss"][0]
assert end["sgd"]["loss"] < 1e-2 * start, end  # SGD fits the data
assert end["sam"]["loss"] < 1e-1 * start, end  # SAM (fixed ρ, normalized) settles at a ρ-dependent level above it
assert end["sam"]["a"] < end["sgd"]["a"], end  # SAM's end point is flatter (this seed; §5 (iv) checks it over seeds)
