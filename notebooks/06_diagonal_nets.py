# %% [markdown]
# # 06 · Diagonal linear networks: implicit bias, and 1-SAM against n-SAM
#
# THEORY.md §3.3, §9 (Andriushchenko–Flammarion, A–F). β = u⊙v, loss (1/2n)‖Xβ − y‖², sparse θ★ (k = 3 of d = 30),
# n = 20, init u = α·1, v = 0. GD's limit minimizes a hyperbolic-entropy potential φ_c among the interpolants
# (small α: ℓ1-like, sparse; large α: ℓ2-like), and SAM changes which interpolant is reached: 1-SAM (a perturbation
# per example) lowers the test loss, n-SAM (one full-batch perturbation) at large ρ does not.

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

from sam_theory import float64, train
from sam_theory.convergence import minimize_potential
from sam_theory.optim import msam, nsam, sgd
from sam_theory.problems import diagonal_linear_net

LR, STEPS, ALPHA, SEEDS = 10 / 30, 10_000, 0.1, (1000, 1001, 1002, 1003)

# %% [markdown]
# ## GD's implicit bias: the limit is argmin_{Xβ=y} φ_c(β), c = u_∞² − v_∞²

# %%
with float64():
    prob = diagonal_linear_net(seed=1000, alpha=ALPHA, n_test=0)
    h = train(prob, sgd(0.05), steps=200_000, batch_size=prob.n, key=jax.random.key(0), log_every=200_000)
    u, v = np.asarray(h.params["u"]), np.asarray(h.params["v"])
beta, c_inf = u * v, u**2 - v**2
X, y = np.asarray(prob.X), np.asarray(prob.y)
sol = minimize_potential(X, y, c_inf)
beta_l2 = np.linalg.lstsq(X, y, rcond=None)[0]
err_pot = np.linalg.norm(beta - sol.beta) / np.linalg.norm(sol.beta)
err_l2 = np.linalg.norm(beta - beta_l2) / np.linalg.norm(beta_l2)
fig, ax = plt.subplots(figsize=(7, 3))
ax.stem(np.asarray(prob.theta_star), linefmt="k-", markerfmt="ko", basefmt=" ", label="θ★")
ax.plot(beta, "C0x", label="GD limit β_T"); ax.plot(sol.beta, "C1+", label="argmin φ_c"); ax.plot(beta_l2, "C2.",
                                                                                           label="min-ℓ2 interpolant")
ax.set_xlabel("coordinate"); ax.legend(fontsize=7)
print(f"final f = {h.final_loss:.1e}; ‖β_T − β_φ‖/‖β_φ‖ = {err_pot:.2e}; ‖β_T − β_ℓ2‖/‖β_ℓ2‖ = {err_l2:.3f}")

# %% [markdown]
# ## A–F: test loss of GD, n-SAM and 1-SAM (η = 10/d, 10⁴ steps, full batch, 4 data draws)
#
# n-SAM perturbs by ρ_AF∇L (`nsam(source="full", normalize=False)`); 1-SAM by ρ∇f_k per example k
# (`msam(m=1, normalize=False)`) with ρ = 2ρ_AF (the A–F convention).

# %%
tests = {"GD": [], "n-SAM ρ_AF=0.05": [], "n-SAM ρ_AF=0.15": [], "1-SAM ρ_AF=0.05": []}
with float64():
    for s in SEEDS:
        p = diagonal_linear_net(seed=s, alpha=ALPHA)
        for name, opt in (("GD", sgd(LR)), ("n-SAM ρ_AF=0.05", nsam(LR, 0.05, "full", normalize=False)),
                          ("n-SAM ρ_AF=0.15", nsam(LR, 0.15, "full", normalize=False)),
                          ("1-SAM ρ_AF=0.05", msam(LR, 0.1, 1, normalize=False))):
            r = train(p, opt, steps=STEPS, batch_size=p.n, key=jax.random.key(0), log_every=STEPS)
            tests[name].append(float(r.test_losses[-1]))
logs = {k: np.log10(v) for k, v in tests.items()}
for k, v in logs.items():
    print(f"{k:18s} log10 test loss per draw: {np.round(v, 2)}   mean {v.mean():.2f}")
fig, ax = plt.subplots(figsize=(6, 3))
ax.boxplot(list(logs.values()), tick_labels=list(logs)); ax.set_ylabel("log10 test loss")
gain = logs["GD"] - logs["1-SAM ρ_AF=0.05"]
harm = logs["n-SAM ρ_AF=0.15"] - logs["GD"]
print(f"paired GD − 1-SAM: {gain.mean():.2f} ± {gain.std(ddof=1) / 2:.2f} decades; "
      f"n-SAM(0.15) − GD: {harm.mean():.2f} ± {harm.std(ddof=1) / 2:.2f}")

# %% [markdown]
# ## What this notebook asserts
#
# With 4 draws the n-SAM(ρ_AF = 0.15) − GD difference is small (a few hundredths of a decade) and not beyond 2 SE,
# so only its sign is asserted here; the registered check `diag_net.one_sam_beats_gd` tests it on 6 draws.

# %%
assert err_pot < 1e-2 * err_l2, (err_pot, err_l2)  # GD's limit is the potential's minimizer, not the ℓ2 one
assert sol.constraint_residual < 1e-10
assert gain.mean() > 2 * gain.std(ddof=1) / 2  # 1-SAM beats GD beyond 2 SE (paired, 4 draws)
assert harm.mean() > 0  # n-SAM at ρ_AF = 0.15 does not beat GD (A–F: its bias does not help here)
