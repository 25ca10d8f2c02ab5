"""Linear regression, THEORY.md §3.1: f_i(w) = ½(a_iᵀw − y_i)², rows a_i ~ N(0, I_p/p), y = A w★ (+ noise)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..validation import check_finite_array, check_int, check_nonnegative
from .base import Problem


class LinearRegression(Problem):
    """Overparameterized iff p > n; then AAᵀ is invertible and interpolation is exact (noise = 0).

    Params: a 1-D array ``w`` of shape ``(p,)``; `init` returns zeros.

    Example:
      >>> import numpy as np
      >>> prob = LinearRegression(np.eye(2, 3), np.array([1.0, -1.0]))
      >>> prob.n, prob.p, float(prob.loss(np.array([1.0, -1.0, 0.0])))
      (2, 3, 0.0)
    """

    name = "linear_regression"

    def __init__(self, X, y, w_star=None, *, noise: float = 0.0, seed: int | None = None, test_data=None):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n, p), got shape {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
        check_finite_array("X", X)
        check_finite_array("y", y)
        self.X, self.y = X, y
        self.w_star = None if w_star is None else np.asarray(w_star, dtype=np.float64)
        self.noise, self.seed = noise, seed
        self.data = (X, y)
        self._make_test = None
        self.test_data = test_data

    @property
    def test_data(self):
        """The test set (X_test, y_test), or None; `linear_regression` builds it on first access (it is
        n_test × p: at p = 10⁶ a 1000-row test set is 8 GB, so it is not built unless asked for)."""
        if self._test_data is None and self._make_test is not None:
            self._test_data, self._make_test = self._make_test(), None
        return self._test_data

    @test_data.setter
    def test_data(self, value):
        self._test_data, self._make_test = value, None

    def defer_test_data(self, make) -> None:
        """Build the test set with ``make()`` on first access of `test_data` (lazily)."""
        self._test_data, self._make_test = None, make

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def num_params(self) -> int:
        return self.p

    def init(self, key=None):
        return jnp.zeros(self.p)

    def per_example_loss(self, w, example):
        a, y = example
        return 0.5 * (jnp.dot(a, w) - y) ** 2

    def structured_losses(self, w, examples, ops):
        """Batched f_i with the one dense layer a ↦ aᵀw (layer form for structured m-SAM)."""
        a, y = examples
        return 0.5 * (ops.dense(None, a) - y) ** 2  # name None: the params are the bare vector w

    def prediction(self, w, example):
        return jnp.dot(example[0], w)

    def constants(self) -> dict:
        """Exact constants of Theorem B (THEORY.md §3.1 and §6).

        beta = max_i ‖a_i‖² (each f_i is β-smooth, H_i = a_i a_iᵀ), lam = λ_max(AᵀA)/n (f is λ-smooth),
        mu = λ_min(AAᵀ)/n (μ-PL: ½‖∇f‖² = rᵀAAᵀr/(2n²) ≥ μ·‖r‖²/(2n)). mu is 0 when p < n.
        """
        n, p = self.X.shape
        gram = self.X @ self.X.T
        eig = np.linalg.eigvalsh(gram)
        beta = float(np.max(np.sum(self.X**2, axis=1)))
        lam = float(eig[-1] / n)
        mu = float(max(eig[0], 0.0) / n) if p >= n else 0.0
        return {"beta": beta, "lam": lam, "mu": mu}

    def hessian_closed_form(self):
        """H = AᵀA/n and H_i = a_i a_iᵀ (THEORY.md §3.1)."""
        n = self.X.shape[0]
        return self.X.T @ self.X / n, np.einsum("ni,nj->nij", self.X, self.X)

    def describe(self) -> dict:
        return {"name": self.name, "n": self.n, "p": self.p, "num_params": self.p, "noise": self.noise,
                "seed": self.seed, "overparameterized": self.p > self.n}


def linear_regression(n: int, p: int, *, noise: float = 0.0, seed: int = 0, n_test: int = 1000) -> LinearRegression:
    """THEORY.md §3.1: rows a_i ~ N(0, I_p/p), w★ ~ N(0, I_p), y = A w★ + σ·N(0, 1).

    Args:
      n: number of examples (> 0).
      p: number of parameters (> 0); the overparameterization knob (p > n interpolates).
      noise: label-noise standard deviation σ ≥ 0 (test labels stay clean).
      seed: NumPy seed of the data; the same seed gives the same data in float32 and float64.
      n_test: size of the clean test set drawn from the same distribution, built on first access of
        ``problem.test_data`` (never for a run that does not ask for it).

    Example:
      >>> from sam_theory import float64
      >>> prob = linear_regression(n=4, p=10, seed=0)
      >>> prob.X.shape, prob.interpolates(prob.w_star)
      ((4, 10), True)
      >>> with float64():
      ...     c = prob.constants()
      >>> bool(c["mu"] <= c["lam"] <= c["beta"])              # μ ≤ λ ≤ β (THEORY.md §3.1)
      True
    """
    n = check_int("n", n)
    p = check_int("p", p)
    check_nonnegative("noise", noise)
    n_test = check_int("n_test", n_test, minimum=0)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) / np.sqrt(p)
    w_star = rng.standard_normal(p)
    y = X @ w_star + noise * rng.standard_normal(n)
    prob = LinearRegression(X, y, w_star, noise=noise, seed=seed)
    state = rng.bit_generator.state  # the test rows continue the same stream, drawn only when asked for

    def make():
        stream = np.random.default_rng()
        stream.bit_generator.state = state
        X_test = stream.standard_normal((n_test, p)) / np.sqrt(p)
        return X_test, X_test @ w_star
    prob.defer_test_data(make)
    return prob
