# %% [markdown]
# # 02 · Curvature along training: λ_max, tr H^k, s_k and the spectral density as SGD and SAM train
#
# THEORY.md §4: at a point x, H = ∇²f(x), S_k = E_ξ[H_ξ^k] − H^k, a = λ_max(H), s_k = λ_max(S_k)^{1/k}. We train a
# two-layer ReLU net (p = 192) with SGD and with SAM from the same init and batches, and measure the curvature every
# 500 steps: densely (exact, p is small) and matrix-free (Lanczos on Hessian-vector products, SLQ for the density),
# which must agree.
#
# *The training loop below is a plain loop over segments; once `sam_theory.train.observe` exists it replaces it.*

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

from sam_theory import float64, train
from sam_theory.curvature import BatchCurvature, hessian, hessian_moments, hvp, spectral_density, top_eigenvalues
from sam_theory.optim import sam, sgd
from sam_theory.problems import two_layer_net

SEGMENTS, STEPS = 2, 500

# %%
curves = {}
with float64():
    prob = two_layer_net(n=40, d=5, width=32, seed=0)
    x0 = prob.init(jax.random.key(1000))
    for opt in (sgd(0.2), sam(0.2, 0.1)):
        params, rows = x0, []
        for seg in range(SEGMENTS + 1):
            m = hessian_moments(BatchCurvature.from_problem(prob, params, batch_size=1, method="dense"))
            rows.append(dict(t=seg * STEPS, loss=float(prob.loss(params)), a=m.a, tr1=m.traces[1], tr2=m.traces[2],
                             s2=m.s[2], s3=m.s[3], s4=m.s[4]))
            if seg < SEGMENTS:
                params = train(prob, opt, steps=STEPS, batch_size=8, key=jax.random.key(1001 + seg),
                               params=params, log_every=STEPS).params
        curves[opt.name] = (rows, params)
for name, (rows, _) in curves.items():
    print(name)
    for r in rows:
        print("  t={t:5d} f={loss:.2e} a={a:.3f} trH={tr1:.3f} trH²={tr2:.3f} s2={s2:.3f} s3={s3:.3f} s4={s4:.3f}"
              .format(**r))

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
for name, (rows, _) in curves.items():
    t = [r["t"] for r in rows]
    axes[0].semilogy(t, [r["loss"] for r in rows], "o-", label=name)
    axes[1].plot(t, [r["a"] for r in rows], "o-", label=name)
    axes[2].plot(t, [r["s2"] for r in rows], "o-", label=name)
for ax, title in zip(axes, ("f(x_t)", "a = λ_max(H)", "s_2 = λ_max(S_2)^{1/2}, b = 1")):
    ax.set_title(title); ax.set_xlabel("step t"); ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Matrix-free against dense at the end points
#
# Lanczos on the HVP operator (`hvp`, one linearization) for λ_max, and the SLQ spectral density (Gaussian
# smoothing σ = 0.05) against the dense eigenvalues.

# %%
checks, ends = {}, {name: params for name, (_, params) in curves.items()}
with float64():
    eigs = {name: np.linalg.eigvalsh(np.asarray(hessian(prob.loss, x))) for name, x in ends.items()}
    grid = np.linspace(min(e[0] for e in eigs.values()) - 0.5, max(e[-1] for e in eigs.values()) + 0.5, 400)
    # one compile each, shared by both end points: the operator is built inside the jitted function
    lanczos_top = jax.jit(lambda x: top_eigenvalues(hvp(prob.loss, x), 1, key=jax.random.key(1002)).values[0])
    slq_density = jax.jit(lambda x: spectral_density(hvp(prob.loss, x), grid, sigma=0.05, num_probes=20, order=60,
                                                     key=jax.random.key(1003)).density)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, x in ends.items():
        eig, top, dens = eigs[name], float(lanczos_top(x)), np.asarray(slq_density(x))
        mass = float(np.trapezoid(dens, grid))
        checks[name] = dict(top_err=abs(top - eig[-1]) / eig[-1],
                            tr_err=abs(curves[name][0][-1]["tr1"] - eig.sum()) / abs(eig.sum()), mass=mass)
        ax.semilogy(grid, np.maximum(dens, 1e-6), label=f"{name}: λ_max = {top:.3f}")
        print(f"{name}: Lanczos λ_max {top:.6f} vs dense {eig[-1]:.6f}; density mass {mass:.3f}")
ax.set_xlabel("eigenvalue"); ax.set_title("SLQ spectral density at the end point"); ax.legend();

# %% [markdown]
# ## What this notebook asserts
#
# Normalized SAM with a fixed ρ does not converge to an interpolating point (its perturbation ρ∇f/‖∇f‖ does not
# vanish there): its loss fluctuates around a ρ-dependent level (1e-3 to 2e-2 here), so its fit is asserted only
# as a tenfold decrease.

# %%
for name, c in checks.items():
    assert c["top_err"] < 1e-8, (name, c)  # Lanczos λ_max = dense λ_max
    assert c["tr_err"] < 1e-10, (name, c)  # tr H from hessian_moments = sum of the dense eigenvalues
    assert 0.95 < c["mass"] < 1.05, (name, c)  # the smoothed density integrates to ≈ 1
end = {name: rows[-1] for name, (rows, _) in curves.items()}
start = curves["sgd"][0][0]["loss"]
assert end["sgd"]["loss"] < 1e-2 * start, end  # SGD fits the data
assert end["sam"]["loss"] < 1e-1 * start, end  # SAM (fixed ρ, normalized) settles at a ρ-dependent level above it
assert end["sam"]["a"] < end["sgd"]["a"]  # SAM's end point is flatter (this seed; §5 (iv) checks it over seeds)
