# %% [markdown]
# # 05 · Edge of stability of normalized SAM (full batch)
#
# THEORY.md §7. Normalized SAM, x ← x − η∇f(x + ρ∇f/‖∇f‖), on a quadratic f = ½xᵀHx with ηλ₁ < 2 does not
# converge: it ends in a 2-cycle x = ±(ηρλ₁/(2 − ηλ₁))v₁. Its stability threshold along a direction of curvature λ
# is the *SAM edge* λ_edge(‖∇f‖) = (‖∇f‖/(2ρ))(√(1 + 8ρ/(η‖∇f‖)) − 1) < 2/η; on a network, the sharpness of
# full-batch SAM hovers at that edge instead of at GD's 2/η.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from sam_theory import float64, train
from sam_theory.convergence import sam_edge, two_cycle_amplitude
from sam_theory.curvature import hvp, top_eigenvalues
from sam_theory.optim import Batch, sam, sgd
from sam_theory.problems import two_layer_net

# %% [markdown]
# ## The 2-cycle on a quadratic (p = 20, λ₁ = 1, η = 1.2, ρ = 0.05)

# %%
with float64():
    rng = np.random.default_rng(1000)
    lam = np.concatenate([[1.0], rng.uniform(0.1, 0.8, 19)])
    Q, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    H, x0 = (Q * lam) @ Q.T, rng.standard_normal(20)
    lr, rho, steps = 1.2, 0.05, 400
    opt, batch = sam(lr, rho, eps=0.0), Batch(jnp.asarray(H), lambda x, H: 0.5 * x @ H @ x)
    step = lambda x, _: (opt.step(x, (), batch)[0],) * 2
    xs = np.asarray(jax.jit(lambda x: jax.lax.scan(step, x, None, length=steps)[1])(jnp.asarray(x0)))
v1 = Q[:, 0]
amp = two_cycle_amplitude(lr, rho, 1.0)
coord = xs @ v1
cycle_err = max(np.linalg.norm(x - np.sign(x @ v1) * amp * v1) / amp for x in xs[-2:])
edge_at_cycle = [float(sam_edge(np.linalg.norm(H @ x), lr, rho)) for x in xs[-2:]]
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(np.arange(steps - 60, steps), coord[-60:], ".-", label="⟨x_t, v₁⟩")
ax.axhline(amp, ls="--", c="k", lw=0.8); ax.axhline(-amp, ls="--", c="k", lw=0.8, label="±ηρλ₁/(2 − ηλ₁)")
ax.set_xlabel("step t"); ax.legend()
print(f"amplitude {amp:.10f}; ⟨x_T−1, v₁⟩ = {coord[-2]:.10f}, ⟨x_T, v₁⟩ = {coord[-1]:.10f}; "
      f"relative error {cycle_err:.1e}; λ_edge(‖∇f‖) at the cycle = {edge_at_cycle[0]:.12f} (λ₁ = 1)")

# %% [markdown]
# ## The SAM edge on a two-layer tanh net (p = 192), full batch, η = 0.5, ρ = 0.05
#
# λ_max(H(x_t)) by Lanczos every 100 steps, against λ_edge(‖∇f(x_t)‖) and 2/η. GD from the same init is the control:
# its sharpness is governed by 2/η, not by the SAM edge.

# %%
paths = {}
with float64():
    prob = two_layer_net(n=32, d=5, width=32, activation="tanh", seed=1000, n_test=0)
    x_init = prob.init(jax.random.key(1000))
    for opt in (sam(0.5, 0.05), sgd(0.5)):
        params, rows = x_init, []
        for seg in range(20):
            params = train(prob, opt, steps=100, batch_size=prob.n, key=jax.random.key(1000), params=params,
                           log_every=100).params
            top = float(top_eigenvalues(hvp(prob.loss, params), 1, num_iters=30, key=jax.random.key(0)).values[0])
            g = float(np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree.leaves(jax.grad(prob.loss)(params)))))
            rows.append((100 * (seg + 1), top, float(sam_edge(g, 0.5, 0.05)), float(prob.loss(params))))
        paths[opt.name] = np.array(rows)
fig, ax = plt.subplots(figsize=(6.5, 3.5))
for k, (name, r) in enumerate(paths.items()):
    ax.plot(r[:, 0], r[:, 1], "o-", color=f"C{k}", label=f"{name}: λ_max(H)")
    ax.plot(r[:, 0], r[:, 2], "--", color=f"C{k}", label=f"λ_edge(‖∇f‖) along {name}")
ax.axhline(2 / 0.5, c="k", lw=0.8, label="2/η"); ax.set_xlabel("step t"); ax.legend(fontsize=7)
late = {name: float(np.mean(r[10:, 1] / r[10:, 2])) for name, r in paths.items()}
for name, r in paths.items():
    print(f"{name}: final f = {r[-1, 3]:.2e}, max λ_max = {r[:, 1].max():.4f}, late mean λ_max/λ_edge = {late[name]:.4f}")

# %% [markdown]
# ## What this notebook asserts

# %%
assert cycle_err < 1e-10  # the 2-cycle amplitude, to round-off
assert np.sign(coord[-1]) == -np.sign(coord[-2])  # the sign alternates
assert max(abs(e - 1.0) for e in edge_at_cycle) < 1e-10  # λ_edge(‖∇f‖) = λ₁ on the cycle
assert abs(late["sam"] - 1) < 0.1  # SAM's sharpness hovers at the SAM edge (±10 %, the check's band)
assert paths["sam"][:, 1].max() < 2 / 0.5  # and stays below GD's edge 2/η
assert abs(late["sgd"] - 1) > 0.1  # GD's does not follow the SAM edge
