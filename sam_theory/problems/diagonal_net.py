"""Diagonal linear networks, THEORY.md §3.3 and §9 (the Andriushchenko–Flammarion setup).

Loss (1/2n)‖Xβ − y‖², i.e. f_i = ½(x_iᵀβ − y_i)², with X ~ N(0, I), y = Xθ★, θ★ k-sparse of unit norm.
Forms of β(params):
  "uv":    depth 2: β = u ⊙ v, params {"u", "v"}, init u = α·1, v = 0;
           depth D > 2: β = Π_k w_k, params {"w": (D, d)}, init w_1..w_{D−1} = α·1, w_D = 0;
  "u2-v2": β = u^D − v^D (D = depth, elementwise powers), params {"u", "v"}, init u = v = α·1 (β = 0).
The Hessian of the u⊙v loss in closed form (`hessian_closed_form`, also for u²−v²): with r = Xβ − y, G = XᵀX/n,
g = Xᵀr/n,  H_uu = diag(v) G diag(v),  H_vv = diag(u) G diag(u),  H_uv = diag(v) G diag(u) + diag(g).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..validation import check_choice, check_int, check_nonnegative, check_positive
from .base import Problem
from .masks import apply_mask

FORMS = ("uv", "u2-v2")
DESIGNS = ("random", "af")


class DiagonalLinearNet(Problem):
    """The diagonal linear network of THEORY.md §3.3 (forms, init and closed-form Hessian: module docstring);
    built by `diagonal_linear_net`. Data: X (n, d) i.i.d. N(0, 1), y = Xθ★ (+ noise), θ★ k-sparse of unit norm.

    Example (θ★ has k = 2 non-zeros and norm 1; u = θ★, v = 1 gives β = θ★, a zero of the noise-free loss):
      >>> import jax.numpy as jnp, numpy as np
      >>> prob = DiagonalLinearNet(n=5, d=8, k=2, n_test=0, seed=0)
      >>> prob.X.shape, int(np.count_nonzero(prob.theta_star)), round(float(np.linalg.norm(prob.theta_star)), 6)
      ((5, 8), 2, 1.0)
      >>> float(prob.loss({"u": jnp.asarray(prob.theta_star), "v": jnp.ones(8)})) < 1e-12
      True
    """

    name = "diagonal_linear_net"

    def __init__(self, n=20, d=30, k=3, *, alpha=0.1, form="uv", depth=2, noise=0.0, n_test=1000, seed=0,
                 design="random", sparsity=0.0, pruner="random", weight_decay=0.0, perturb_weight_decay=False):
        self.n_train, self.d, self.k = check_int("n", n), check_int("d", d), check_int("k", k)
        if k > d:
            raise ValueError(f"k must be <= d, got k={k}, d={d}")
        self.alpha = float(check_positive("alpha", alpha))
        self.form = check_choice("form", form, FORMS)
        self.depth = check_int("depth", depth, minimum=2)
        self.noise = float(check_nonnegative("noise", noise))
        self.n_test, self.seed = check_int("n_test", n_test, minimum=0), seed
        self.design = check_choice("design", design, DESIGNS)
        if design == "random":
            rng = np.random.default_rng(seed)
            X = rng.standard_normal((n, d))
            theta = np.zeros(d)
            support = np.sort(rng.choice(d, k, replace=False))
            theta[support] = rng.standard_normal(k)
            theta /= np.linalg.norm(theta)
            y = X @ theta + self.noise * rng.standard_normal(n)
            X_test = rng.standard_normal((n_test, d))
        else:  # the draw of A–F's notebook (np.random.seed(seed)): θ★ ≥ 0 on the first k coordinates
            rng = np.random.RandomState(seed)
            X = rng.multivariate_normal(np.zeros(d), np.eye(d), n)
            X_test = rng.multivariate_normal(np.zeros(d), np.eye(d), n_test)
            theta = rng.randn(d)
            theta[k:] = 0.0
            theta = np.abs(theta) / np.linalg.norm(theta)
            support = np.arange(k)
            y = X @ theta + self.noise * rng.randn(n)
        self.theta_star, self.support = theta, support
        self.X, self.y = X, y
        self.data = (X, y)
        self.test_data = (X_test, X_test @ theta) if n_test else None
        self._configure(seed=seed, weight_decay=weight_decay, perturb_weight_decay=perturb_weight_decay,
                        sparsity=sparsity, pruner=pruner)

    def _init(self, key=None):
        a = self.alpha * jnp.ones(self.d)
        if self.form == "u2-v2":
            return {"u": a, "v": a}
        if self.depth == 2:
            return {"u": a, "v": jnp.zeros(self.d)}
        return {"w": jnp.concatenate([jnp.tile(a, (self.depth - 1, 1)), jnp.zeros((1, self.d))])}

    def _beta(self, params):
        if self.form == "u2-v2":
            return params["u"] ** self.depth - params["v"] ** self.depth
        if "w" in params:
            return jnp.prod(params["w"], axis=-2)
        return params["u"] * params["v"]

    def beta(self, params):
        """The linear predictor β(params ⊙ mask).

        Example (form "uv": β = u ⊙ v):
          >>> import jax.numpy as jnp
          >>> prob = DiagonalLinearNet(n=4, d=3, k=1, n_test=0)
          >>> prob.beta({"u": jnp.array([0.0, 1.0, 2.0]), "v": jnp.full(3, 2.0)}).tolist()
          [0.0, 2.0, 4.0]
        """
        return self._beta(apply_mask(params, self.mask))

    def prediction(self, params, example):
        """ŷ = xᵀβ(params ⊙ mask)."""
        return jnp.dot(example[0], self.beta(params))

    def _loss(self, params, example):
        x, y = example
        return 0.5 * (jnp.dot(x, self._beta(params)) - y) ** 2

    def structured_losses(self, params, examples, ops):
        """Batched f_i with β built from per-example copies ``ops.param`` (layer form for structured m-SAM)."""
        X, y = examples
        return 0.5 * (jnp.sum(X * self._beta({k: ops.param(k) for k in params}), axis=-1) - y) ** 2

    def hessian_closed_form(self, params):
        """The (2d, 2d) Hessian of (1/2n)‖Xβ − y‖² over (u, v) for depth 2, both forms, derived by hand.

        With r = Xβ − y, G = XᵀX/n, g = Xᵀr/n and the chain rule through the elementwise map β(u, v):
        ∇²f = Jᵀ G J + Σ_k g_k ∇²β_k, J = [diag(∂β/∂u), diag(∂β/∂v)]. Hence
          "uv"    (β = u⊙v):   H_uu = diag(v) G diag(v), H_vv = diag(u) G diag(u), H_uv = diag(v) G diag(u) + diag(g);
          "u2-v2" (β = u²−v²): H_uu = 4 diag(u) G diag(u) + 2 diag(g), H_vv = 4 diag(v) G diag(v) − 2 diag(g),
                               H_uv = −4 diag(u) G diag(v).
        The residual terms diag(±g) vanish at interpolation (THEORY.md §3.3, §9). Masks are ignored (dense params).
        """
        if self.depth != 2:
            raise ValueError(f"hessian_closed_form needs depth=2, got depth={self.depth}")
        u, v = np.asarray(params["u"], dtype=np.float64), np.asarray(params["v"], dtype=np.float64)
        if self.form == "uv":
            beta, du, dv, duu, duv, dvv = u * v, v, u, 0.0, 1.0, 0.0
        else:
            beta, du, dv, duu, duv, dvv = u**2 - v**2, 2 * u, -2 * v, 2.0, 0.0, -2.0
        G = self.X.T @ self.X / self.n
        g = self.X.T @ (self.X @ beta - self.y) / self.n
        Huu = du[:, None] * G * du[None, :] + np.diag(duu * g)
        Hvv = dv[:, None] * G * dv[None, :] + np.diag(dvv * g)
        Huv = du[:, None] * G * dv[None, :] + np.diag(duv * g)
        return np.block([[Huu, Huv], [Huv.T, Hvv]])

    def interpolating_params(self) -> dict:
        """An exact factorization of θ★ (u = θ★, v = 1, or the matching u, v for the other forms)."""
        t = self.theta_star
        if self.form == "u2-v2":
            return {"u": jnp.asarray(np.maximum(t, 0) ** (1 / self.depth)),
                    "v": jnp.asarray(np.maximum(-t, 0) ** (1 / self.depth))}
        if self.depth == 2:
            return {"u": jnp.asarray(t), "v": jnp.ones(self.d)}
        return {"w": jnp.concatenate([jnp.ones((self.depth - 1, self.d)), jnp.asarray(t)[None]])}

    def describe(self) -> dict:
        return {**super().describe(), "d": self.d, "k": self.k, "alpha": self.alpha, "form": self.form,
                "depth": self.depth, "noise": self.noise, "seed": self.seed, "design": self.design, "weight_decay": self.weight_decay}


def diagonal_linear_net(n=20, d=30, k=3, *, alpha=0.1, form="uv", depth=2, noise=0.0, n_test=1000, seed=0,
                        design="random", sparsity=0.0, pruner="random", weight_decay=0.0,
                        perturb_weight_decay=False) -> DiagonalLinearNet:
    """The Andriushchenko–Flammarion diagonal linear network (THEORY.md §3.3, §9); see `DiagonalLinearNet`.

    Defaults n = 20, d = 30, k = 3, α = 0.1 are their setup (step 5/d–15/d, 10⁴ steps). The scale α of the
    initialization is the knob of the implicit bias (small α ⇒ close to min ℓ1); ``noise`` adds Gaussian label
    noise to the training targets only. ``design="random"`` (default): X, X_test ~ N(0, I), θ★ with k nonzero
    N(0, 1) entries at random places, unit norm. ``design="af"``: exactly the draw of A–F's notebook after
    ``np.random.seed(seed)`` (X, then X_test by `multivariate_normal`, θ★ = |N(0, 1)| on the first k coordinates,
    unit norm), so their printed losses can be reproduced (`diag_net.af_reference`).

    Example:
      >>> prob = diagonal_linear_net(n=5, d=8, k=2, alpha=0.1, seed=0)
      >>> x = prob.init(None)                                  # u = α·1, v = 0, so β = u⊙v = 0
      >>> [round(float(a), 6) for a in x["u"][:2]], float(abs(prob.beta(x)).max())
      ([0.1, 0.1], 0.0)
    """
    return DiagonalLinearNet(n, d, k, alpha=alpha, form=form, depth=depth, noise=noise, n_test=n_test, seed=seed,
                             design=design,
                             sparsity=sparsity, pruner=pruner, weight_decay=weight_decay,
                             perturb_weight_decay=perturb_weight_decay)
