"""The constants β, λ, μ of Theorem B (THEORY.md §6): exact for quadratics, local estimates for nonlinear models.

(A1) each f_i is β-smooth: β = max_i λ_max(∇²f_i);  (A2) f is λ-smooth: λ = λ_max(∇²f);
(A3) μ-PL for a square loss f = ‖r‖²/(2n) with residual Jacobian J (n × p, J_i = ∇ŷ_i):
     ½‖∇f‖² = rᵀ J Jᵀ r / (2n²) ≥ (λ_min(J Jᵀ)/n) · f, so μ = λ_min(J Jᵀ)/n (the NTK Gram over n).

Methods:
  "exact:linear_regression"  closed forms of THEORY.md §3.1 (`LinearRegression.constants`; μ = 0 when p < n).
  "exact:quadratic"          a problem whose per-example losses are quadratic: dense H_i (they do not depend on the
                             point), β = max_i λ_max(H_i), λ = λ_max(H), μ = λ_min⁺(J Jᵀ)/n (smallest nonzero).
                             Quadraticity is verified: the Hessians at ``params`` and at a random point must agree.
  "local:ntk_gram"           at ``params`` of a nonlinear model: β, λ from the Hessians at that point (dense for small
                             p, matrix-free Lanczos otherwise; the method string says which), μ = λ_min⁺(J Jᵀ)/n.
                             Valid only near that point: recompute along a run to see how far it holds.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from ..curvature import hessian, hvp, per_example_hessians, top_eigenvalues
from ..curvature.eigh import eigvalsh
from ..curvature.lanczos import lanczos_tridiag, tridiagonal
from ..problems import LinearRegression, Problem, as_jax
from ..validation import check_choice, check_int

METHODS = ("auto", "exact", "local")
HESSIAN_METHODS = ("auto", "dense", "lanczos")
DENSE_MAX_PARAMS = 400  # hessian="auto" uses dense Hessians up to this p


@dataclasses.dataclass(frozen=True)
class Constants:
    """β, λ, μ of Theorem B and how they were obtained. ``c["beta"]`` works like a dict (for `theorem_b`).

    Attributes:
      beta: max_i λ_max(∇²f_i).  lam: λ_max(∇²f).  mu: the PL constant λ_min⁺(J Jᵀ)/n (0 when no Gram exists).
      method: "exact:linear_regression", "exact:quadratic", "local:ntk_gram" (+ ":dense" or ":lanczos").
      gram_rank: rank of J Jᵀ (n when the Gram is nonsingular: interpolation is locally reachable); None if exact
        closed forms were used.  n: number of examples.  p: number of parameters.

    Example:
      >>> from sam_theory import float64
      >>> from sam_theory.convergence import constants
      >>> from sam_theory.problems import linear_regression
      >>> with float64():
      ...     c = constants(linear_regression(n=4, p=10, seed=0))
      >>> isinstance(c, Constants), sorted(k for k in ("beta", "lam", "mu"))
      (True, ['beta', 'lam', 'mu'])
    """

    beta: float
    lam: float
    mu: float
    method: str
    n: int
    p: int
    gram_rank: int | None = None

    def __getitem__(self, key: str) -> float:
        if key not in ("beta", "lam", "mu"):
            raise KeyError(key)
        return getattr(self, key)

    def as_dict(self) -> dict:
        return {"beta": self.beta, "lam": self.lam, "mu": self.mu}

    def __str__(self) -> str:
        return f"β={self.beta:.4g} λ={self.lam:.4g} μ={self.mu:.4g} [{self.method}]"


def ntk_gram(problem: Problem, params) -> np.ndarray:
    """J Jᵀ (n × n), J = ∂(ŷ_1, …, ŷ_n)/∂x by reverse mode over the raveled params (THEORY.md §6).

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.problems import linear_regression
      >>> prob = linear_regression(n=4, p=10, seed=0)
      >>> with float64():
      ...     K = ntk_gram(prob, np.zeros(10))
      >>> K.shape, bool(np.allclose(K, prob.X @ prob.X.T))        # J = A for linear regression
      ((4, 4), True)
    """
    J = _prediction_jacobian(problem.prediction, params, as_jax(problem.data))
    return np.asarray(J @ J.T)


@jax.jit(static_argnums=0)
def _prediction_jacobian(prediction, params, data):
    """J = ∂(ŷ_i)_i/∂x over the raveled params; ``prediction`` static, so one problem compiles once per shape."""
    flat, unravel = ravel_pytree(params)
    return jax.jacrev(lambda v: jax.vmap(prediction, in_axes=(None, 0))(unravel(v), data))(flat)


def smallest_nonzero_eigenvalue(gram) -> tuple[float, int]:
    """(λ_min⁺, rank) of a PSD matrix; eigenvalues ≤ size · eps · λ_max count as zero (NumPy's rank rule).

    Example:
      >>> import numpy as np
      >>> smallest_nonzero_eigenvalue(np.diag([0.0, 2.0, 3.0]))   # (μ-type eigenvalue, numerical rank)
      (2.0, 2)
    """
    eig = np.linalg.eigvalsh(np.asarray(gram))
    tol = eig.size * np.finfo(eig.dtype).eps * max(eig[-1], 0.0)
    nonzero = eig[eig > tol]
    return (float(nonzero[0]) if nonzero.size else 0.0), int(nonzero.size)


def per_example_top_eigenvalues(problem: Problem, params, *, num_iters: int | None = None, key=None) -> np.ndarray:
    """λ_max(∇²f_i(params)) for every i by Lanczos (full reorthogonalization), vmapped over examples.

    Each product is a jvp of ∇f_i (no Hessian is formed). Ritz values never exceed λ_max; with ``num_iters`` = p
    they equal it to round-off.

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.problems import linear_regression
      >>> prob = linear_regression(n=4, p=10, seed=0)
      >>> with float64():
      ...     top = per_example_top_eigenvalues(prob, np.zeros(10))
      >>> bool(np.allclose(top, (prob.X ** 2).sum(1)))            # λ_max(a_i a_iᵀ) = ‖a_i‖²
      True
    """
    p = int(ravel_pytree(params)[0].shape[0])
    num_iters = min(p, 40 if num_iters is None else check_int("num_iters", num_iters))
    key = jax.random.key(0) if key is None else key
    keys = jax.random.split(key, problem.n)
    return np.asarray(_per_example_top(problem.per_example_loss, num_iters, params, as_jax(problem.data), keys))


@jax.jit(static_argnums=(0, 1))
def _per_example_top(loss, num_iters, params, data, keys):
    """Lanczos λ_max of every ∇²f_i, vmapped; ``loss`` and ``num_iters`` static (one compilation per problem)."""
    flat, unravel = ravel_pytree(params)

    def one(example, k):
        grad_i = jax.grad(lambda v: loss(unravel(v), example))
        matvec = lambda v: jax.jvp(grad_i, (flat,), (v,))[1]
        k0, _ = jax.random.split(k)
        alphas, betas, _ = lanczos_tridiag(matvec, jax.random.normal(k0, flat.shape, flat.dtype), num_iters, "full")
        return eigvalsh(tridiagonal(alphas, betas))[-1]

    return jax.vmap(one)(data, keys)


def _hessian_constants(problem: Problem, params, hessian_method: str, num_iters, key) -> tuple[float, float]:
    """(β, λ) at params: dense eigvalsh of H_i and H, or Lanczos on each H_i and on H."""
    if hessian_method == "dense":
        Hi = np.asarray(per_example_hessians(problem, params))
        beta = float(np.max(np.linalg.eigvalsh(Hi)[:, -1]))
        lam = float(np.linalg.eigvalsh(Hi.mean(axis=0))[-1])
        return beta, lam
    beta = float(np.max(per_example_top_eigenvalues(problem, params, num_iters=num_iters, key=key)))
    p = ravel_pytree(params)[0].shape[0]
    iters = min(p, 40 if num_iters is None else num_iters)
    lam = float(top_eigenvalues(hvp(problem.loss, params), 1, num_iters=iters, key=key).values[0])
    return beta, lam


def _check_quadratic(problem: Problem, params, key) -> None:
    """Raise ValueError unless ∇²f is the same at ``params`` and at a random point (a quadratic f)."""
    flat, unravel = ravel_pytree(params)
    other = unravel(flat + jax.random.normal(key, flat.shape, flat.dtype))
    H0, H1 = np.asarray(hessian(problem.loss, params)), np.asarray(hessian(problem.loss, other))
    scale = max(np.abs(H0).max(), np.finfo(H0.dtype).tiny)
    if np.abs(H0 - H1).max() > 1e3 * np.finfo(H0.dtype).eps * scale * H0.shape[0]:
        raise ValueError(f"method='exact' needs a quadratic problem; the Hessian of {problem.name} changes "
                         f"between points (use method='local')")


def constants(problem: Problem, params=None, *, method: str = "auto", hessian_method: str = "auto",
              num_iters: int | None = None, key=None) -> Constants:
    """β, λ, μ of Theorem B (THEORY.md §6) for ``problem``, exact or local at ``params``.

    Args:
      problem: a square-loss `Problem` (it must define `prediction` unless it is a `LinearRegression`).
      params: the point of a local estimate (or of the exact quadratic); ``problem.init(key 0)`` if None.
      method: "auto" (exact for `LinearRegression`, local otherwise), "exact" (closed form for linear
        regression; dense Hessians of a verified quadratic otherwise) or "local" (NTK-Gram estimate at params).
      hessian_method: "dense" (per-example dense Hessians), "lanczos" (matrix-free) or "auto" (dense up to
        p = 400). Lanczos Ritz values never exceed λ_max; with num_iters = p they are exact to round-off.
      num_iters: Lanczos iterations (default min(p, 40)).  key: PRNG key for Lanczos starts / the quadratic test.

    Returns:
      a `Constants` (β, λ, μ, method, n, p, Gram rank).

    Example:
      >>> from sam_theory import float64
      >>> from sam_theory.problems import linear_regression
      >>> with float64():
      ...     c = constants(linear_regression(n=4, p=10, seed=0))
      >>> bool(0 < c["mu"] <= c["lam"] <= c["beta"])
      True
    """
    check_choice("method", method, METHODS)
    check_choice("hessian_method", hessian_method, HESSIAN_METHODS)
    key = jax.random.key(0) if key is None else key
    if method == "auto":
        method = "exact" if isinstance(problem, LinearRegression) else "local"
    if method == "exact" and isinstance(problem, LinearRegression):
        c = problem.constants()
        return Constants(c["beta"], c["lam"], c["mu"], "exact:linear_regression", problem.n, problem.num_params)
    if params is None:
        params = problem.init(jax.random.key(0))
    p = int(ravel_pytree(params)[0].shape[0])
    if hessian_method == "auto":
        hessian_method = "dense" if p <= DENSE_MAX_PARAMS else "lanczos"
    if method == "exact":
        _check_quadratic(problem, params, key)
        hessian_method = "dense"
    beta, lam = _hessian_constants(problem, params, hessian_method, num_iters, key)
    mu, rank = smallest_nonzero_eigenvalue(ntk_gram(problem, params))
    name = "exact:quadratic" if method == "exact" else f"local:ntk_gram:{hessian_method}"
    return Constants(beta, lam, mu / problem.n, name, problem.n, p, rank)
