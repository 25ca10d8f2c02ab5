# %% [markdown]
# # 03 · Theorem A: linear stability of stochastic SAM
#
# THEORY.md §5. Near an interpolating minimum x*, USAM's error follows e_{t+1} = (I − ηA_ξ)e_t, A_ξ = H_ξ + ρH_ξ².
# x* is linearly stable iff the spectral radius r(T) of Σ ↦ E_ξ[(I − ηA_ξ)Σ(I − ηA_ξ)] is ≤ 1. We look at r(T)
# against η, the critical learning rate η_c(ρ), the (η, ρ) phase diagram with its necessary-condition curves, and
# the escape of the real (nonlinear) optimizer from x*.

# %%
import tempfile
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from sam_theory import float64
from sam_theory.optim import usam
from sam_theory.plots.stability import plot_phase_diagram
from sam_theory.curvature import BatchCurvature
from sam_theory.stability import (batch_moment_matrices, critical_learning_rate, curvature_summary, escape_test,
                                  one_dimensional_rate, phase_diagram_data, spectral_radius)
from sam_theory.testing import commuting_hessians, interpolating_diagonal_net, random_psd_hessians

OUT = Path(tempfile.mkdtemp())
B = 2  # batch size, without replacement

# %% [markdown]
# ## r(T) against η, for several ρ (n = 8 non-commuting per-example Hessians, p = 4)

# %%
with float64():
    Hi = random_psd_hessians(8, 4, 1000)
    curv = BatchCurvature.from_hessians(Hi, B)  # per-example Hessians + the batch distribution (b = B)
    a = float(np.linalg.eigvalsh(Hi.mean(0))[-1])
    etas = np.linspace(0.05, 1.2, 40) * 2 / a
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for rho in (0.0, 0.1, 0.4):
        ax.semilogy(etas * a / 2, [spectral_radius(curv, eta, rho).value for eta in etas], label=f"ρ={rho}")
    ax.axhline(1, color="k", lw=0.8); ax.set_xlabel("η · a/2 (1 = GD's edge 2/a)"); ax.set_ylabel("r(T)"); ax.legend()

# %% [markdown]
# ## The critical learning rate η_c(ρ) decreases with ρ, and stays below the mean-iterate edge
# η_max = 2/λ_max(H + ρE[H_ξ²])

# %%
with float64():
    rhos = [0.0, 0.05, 0.1, 0.2, 0.4, 0.8]
    crit = [critical_learning_rate(curv, rho) for rho in rhos]
for rho, c in zip(rhos, crit):
    print(f"ρ={rho:4}: η_c = {c.eta:.6f}   η_max = {c.eta_max:.6f}   GD edge 2/a = {2 / a:.6f}")
eta_c = np.array([c.eta for c in crit])

# %% [markdown]
# ## Commuting H_i: r(T) is the worst one-dimensional rate
#
# With diagonal H_i every eigendirection j evolves on its own, and r(T) = max_j g_j with
# g = (1 − ηa − ηρa²)² + η(η−2ρ)S_2 + 2η²ρS_3 + η²ρ²S_4 (THEORY.md §5).

# %%
with float64():
    Hc = commuting_hessians(6, 3, 1000)
    cc = BatchCurvature.from_hessians(Hc, 1)
    m = batch_moment_matrices(cc)
    H, S = m.H, {k: m.S(k) for k in (2, 3, 4)}
    one_d = []
    for eta, rho in ((0.5, 0.1), (1.0, 0.3), (1.4, 0.05)):
        g = one_dimensional_rate(np.diag(H), np.diag(S[2]), np.diag(S[3]), np.diag(S[4]), eta, rho)
        r = spectral_radius(cc, eta, rho).value
        one_d.append(abs(r - g.max()) / r)
        print(f"η={eta}, ρ={rho}: r(T) = {r:.12f}, max_j g_j = {g.max():.12f}")

# %% [markdown]
# ## The phase diagram
#
# Colour: r(T) on an (η, ρ) grid; the exact boundary η_c(ρ); each necessary condition holds below its curve; markers
# are Monte Carlo runs of the linearized recursion (o: E‖e_T‖² shrank, x: grew).

# %%
with float64():
    ac = curvature_summary(cc)[0]
    data = phase_diagram_data(cc, np.linspace(0.05, 1.2, 16) * 2 / ac, np.linspace(0, 1 / ac, 8),
                              sim_every=3, sim_runs=1000, sim_steps=40, key=jax.random.key(1000))
display(Image(str(plot_phase_diagram(data, OUT / "phase.png"))))
# Monte Carlo against r(T) where r(T)^T is clearly away from 1 (|T log r| > 3): they must agree
clear = []
for eta, rho, grew, unstable in data["sim"]:
    i, j = np.argmin(abs(data["rhos"] - rho)), np.argmin(abs(data["etas"] - eta))
    if abs(data["sim_steps"] * np.log(data["radii"][i, j])) > 3:
        clear.append(grew == unstable)
print(f"Monte Carlo agrees with r(T) at {sum(clear)}/{len(clear)} clear grid points")

# %% [markdown]
# ## Escape of the nonlinear optimizer
#
# A diagonal linear net u⊙v at an interpolating minimum x* (by construction), USAM ρ = 0.05, b = 1, started at
# x* + e_0 with ‖e_0‖ = 1e-6: it stays near x* at 0.7 η_c and escapes at 1.4 η_c.

# %%
escapes = []
fig, ax = plt.subplots(figsize=(6, 3.5))
with float64():
    prob, x_star = interpolating_diagonal_net(1000)
    cx = BatchCurvature.from_problem(prob, x_star, batch_size=1)
    c = critical_learning_rate(cx, 0.05)
    for factor in (0.7, 1.4):
        eta = factor * c.eta
        r = spectral_radius(cx, eta, 0.05).value
        for s in range(2):
            e = escape_test(prob, x_star, usam(eta, 0.05), 1e-6, 1000, jax.random.key(1000 + s), batch_size=1)
            escapes.append((r > 1 + 1e-9, e.escaped))
            ax.semilogy(e.t, e.distances, color="C0" if factor < 1 else "C3",
                        label=f"{factor} η_c, r(T) = {r:.4f}" if s == 0 else None)
        print(f"η = {factor} η_c = {eta:.4f}: r(T) = {r:.6f}, escaped {[x[1] for x in escapes[-2:]]}")
ax.set_xlabel("step t"); ax.set_ylabel("‖x_t − x*‖"); ax.legend();

# %% [markdown]
# ## What this notebook asserts

# %%
assert np.all(np.diff(eta_c) < 0), eta_c  # η_c strictly decreasing in ρ
assert all(cr.eta <= cr.eta_max * (1 + 1e-9) for cr in crit)  # η_c ≤ the mean-iterate edge
assert abs(crit[0].eta - 2 / a) / (2 / a) > 1e-3  # with b < n, SGD's edge is below GD's 2/a
assert max(one_d) < 1e-10, one_d  # commuting case: r(T) = max_j g_j to round-off
assert clear and all(clear), clear  # Monte Carlo agrees with r(T) where the answer is clear
assert all(unstable == escaped for unstable, escaped in escapes), escapes  # escape iff r(T) > 1
