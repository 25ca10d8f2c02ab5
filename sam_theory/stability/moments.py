"""Moment matrices of the linearized USAM step (THEORY.md §5): S_k, M = E[B_ξ²] and the second-moment operator
T(Σ) = E[B_ξ Σ B_ξ], all from set partitions (§4.1) on a `BatchCurvature` (no batch enumeration).

- `batch_moment_matrices`: H and S_k = E[H_ξ^k] − H^k, k = 2, 3, 4, dense (a typed record).
- `moment_matrix`: M = (I − ηH − ηρH²)² + η(η − 2ρ)S_2 + 2η²ρS_3 + η²ρ²S_4 [exact, the moment identity].
- `second_moment_operator`: T(Σ) = Σ − η(E[A_ξ]Σ + ΣE[A_ξ]) + η²(E[H_ξΣH_ξ] + ρE[H_ξ²ΣH_ξ] + ρE[H_ξΣH_ξ²]
  + ρ²E[H_ξ²ΣH_ξ²]), each expectation a word of `sam_theory.curvature.expected_product` with Σ fixed in it.
  Dense: the (p², p²) matrix on row-major vec(Σ) (vec(BΣB) = (B ⊗ B) vec Σ for symmetric B). Matrix-free: a
  `LinearOperator` on R^{p²}, vec(Σ) ↦ vec(T(sym Σ)) (sym(Σ) = (Σ + Σᵀ)/2 projects onto symmetric matrices, so
  the map is symmetric with the nonzero spectrum of T on symmetric matrices).
- `operator_pieces`: T restricted to symmetric matrices in an orthonormal basis (d = p(p+1)/2) is
  I − η(P_0 + ρP_1) + η²(K_1 + ρK_2 + ρ²K_3); the five (d, d) pieces do not depend on η or ρ, so a scan over η
  and ρ builds them once.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import Partial

from ..curvature import BatchCurvature, dense_operator_bytes, expected_product, linear_operator, stochastic_moment
from ..memory import check_fits, fits
from ..validation import check_choice
from .step_map import check_curvature, check_step, mean_step

DENSE_MAX_P = 24  # "auto": the dense operator on symmetric matrices (d = p(p+1)/2 ≤ 300) up to this p
METHODS = ("auto", "dense", "matrix_free")


@dataclasses.dataclass(frozen=True)
class BatchMomentMatrices:
    """H and S_k = E_ξ[H_ξ^k] − H^k (k = 2, 3, 4) as dense symmetric (p, p) arrays (THEORY.md §4, §4.1).

    ``S(k)`` returns S_k; ``top(k)`` = λ_max(S_k); ``s(k)`` = its real k-th root; ``a`` = λ_max(H).

    Example (returned by `batch_moment_matrices`; without replacement at b = n the batch is the full sum, H_ξ = H,
    so every S_k = 0):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     m = batch_moment_matrices(BatchCurvature.from_hessians(Hs, batch_size=2))
      >>> m.batch_size, m.replace, m.a, [m.top(k) for k in (2, 3, 4)]
      (2, False, 2.0, [0.0, 0.0, 0.0])
    """

    H: np.ndarray
    S2: np.ndarray
    S3: np.ndarray
    S4: np.ndarray
    batch_size: int
    replace: bool

    def S(self, k: int) -> np.ndarray:
        return {2: self.S2, 3: self.S3, 4: self.S4}[k]

    def top(self, k: int) -> float:
        return float(np.linalg.eigvalsh(self.S(k))[-1])

    def s(self, k: int) -> float:
        v = self.top(k)
        return float(np.sign(v) * abs(v) ** (1.0 / k))

    @property
    def a(self) -> float:
        return float(np.linalg.eigvalsh(self.H)[-1])


@jax.jit
def _moment_matrices(curv):
    sym = lambda x: 0.5 * (x + x.T)  # noqa: E731
    return (sym(expected_product(curv, ("H",))),) + tuple(sym(stochastic_moment(curv, k)) for k in (2, 3, 4))


def batch_moment_matrices(curv: BatchCurvature) -> BatchMomentMatrices:
    """H, S_2, S_3, S_4 dense from set partitions (THEORY.md §4.1).

    Example (b = 1: S_k = (H_1^k + H_2^k)/2 − H^k, diagonal for commuting H_i: S_2 = diag(5 − 4, 2 − 1),
    S_3 = diag(14 − 8, 4 − 1), S_4 = diag(41 − 16, 8 − 1), so s_2 = 1, s_3 = 6^{1/3}, s_4 = 25^{1/4} = √5):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     m = batch_moment_matrices(BatchCurvature.from_hessians(Hs, batch_size=1))
      >>> [np.diag(m.S(k)).round(6).tolist() for k in (2, 3, 4)]
      [[1.0, 1.0], [6.0, 3.0], [25.0, 7.0]]
      >>> round(m.a, 6), round(m.s(2), 6), round(m.s(3), 6), round(m.s(4), 6)
      (2.0, 1.0, 1.817121, 2.236068)
    """
    H, S2, S3, S4 = (np.asarray(x) for x in _moment_matrices(check_curvature(curv).batch_as_data()))
    return BatchMomentMatrices(H, S2, S3, S4, curv.batch_size, curv.replace)


def moment_matrix(curv: BatchCurvature, eta, rho) -> np.ndarray:
    """M = E_ξ[(I − ηA_ξ)²] = (I − ηH − ηρH²)² + η(η − 2ρ)S_2 + 2η²ρS_3 + η²ρ²S_4 (THEORY.md §5, the moment
    identity, with S_k from set partitions). E‖e_{t+1}‖² = E[e_tᵀ M e_t]; λ_max(M) ≤ 1 is sufficient for
    stability.

    Example (commuting H_i, b = 1: M is diagonal with the one-dimensional rates E[(1 − ηA_ξ)²] per direction;
    at η = 0.25, ρ = 0.5, A_ξ ∈ {7.5, 1.5} along e_1 gives 1 − 2η·4.5 + η²·29.25 = 0.578125 and A_ξ ∈ {4, 0}
    along e_2 gives 1 − 2η·2 + η²·8 = 0.5):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     M = moment_matrix(BatchCurvature.from_hessians(Hs, batch_size=1), 0.25, 0.5)
      >>> (M.round(6) + 0.0).tolist()
      [[0.578125, 0.0], [0.0, 0.5]]
    """
    check_step(eta, rho)
    m = batch_moment_matrices(curv)
    D = np.eye(curv.size) - eta * m.H - eta * rho * m.H @ m.H
    return D @ D + eta * (eta - 2 * rho) * m.S2 + 2 * eta**2 * rho * m.S3 + eta**2 * rho**2 * m.S4


# --- T -------------------------------------------------------------------------------------------------------

def _quadratic_parts(curv, Sigma):
    """E[H_ξΣH_ξ], E[H_ξ²ΣH_ξ] + E[H_ξΣH_ξ²], E[H_ξ²ΣH_ξ²] (words with Σ fixed between the factors)."""
    f = (Sigma,)
    K1 = expected_product(curv, ("H", 0, "H"), f)
    K2 = expected_product(curv, ("H", "H", 0, "H"), f) + expected_product(curv, ("H", 0, "H", "H"), f)
    K3 = expected_product(curv, ("H", "H", 0, "H", "H"), f)
    return K1, K2, K3


def second_moment_apply(curv: BatchCurvature, eta, rho, Sigma):
    """T(Σ) = E_ξ[(I − ηA_ξ)Σ(I − ηA_ξ)] for a (p, p) Σ (THEORY.md §5), by set partitions; pure, jittable.

    Example (T(I) = E[B_ξ²] = M, the `moment_matrix`; for commuting H_i, T(e_1e_2ᵀ) = E[(1 − ηA_ξ,1)(1 − ηA_ξ,2)]
    e_1e_2ᵀ = ((1 − 0.25·7.5)(1 − 0.25·4) + (1 − 0.25·1.5)(1 − 0))/2 · e_1e_2ᵀ = 0.3125 e_1e_2ᵀ):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> import jax.numpy as jnp
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(Hs, batch_size=1)
      ...     TI = second_moment_apply(curv, 0.25, 0.5, jnp.eye(2))
      ...     T12 = second_moment_apply(curv, 0.25, 0.5, jnp.array([[0.0, 1.0], [0.0, 0.0]]))
      ...     M = moment_matrix(curv, 0.25, 0.5)
      >>> bool(np.allclose(TI, M, rtol=0, atol=1e-12)), (np.round(np.asarray(T12), 6) + 0.0).tolist()
      (True, [[0.0, 0.3125], [0.0, 0.0]])
    """
    EA = mean_step(curv, rho)
    K1, K2, K3 = _quadratic_parts(curv, Sigma)
    return Sigma - eta * (EA @ Sigma + Sigma @ EA) + eta**2 * (K1 + rho * K2 + rho**2 * K3)


def apply_symmetrized(curv: BatchCurvature, eta, rho, x):
    """vec(T(sym X)) for vec(X) = x (p²,): the symmetric matrix-free form of T on R^{p²}."""
    p = curv.size
    X = x.reshape(p, p)
    return second_moment_apply(curv, eta, rho, 0.5 * (X + X.T)).ravel()


@jax.jit
def _dense_T(curv, eta, rho):
    p = curv.size
    units = jnp.eye(p * p, dtype=curv.dtype).reshape(p * p, p, p)
    cols = lax.map(lambda E: second_moment_apply(curv, eta, rho, E).ravel(), units)  # row j = T(E_j)
    return cols.T


def resolve_method(curv: BatchCurvature, method: str, memory_budget=None) -> str:
    """"auto": dense iff p ≤ DENSE_MAX_P and the dense operator fits ``memory_budget``; an explicit "dense" over
    the budget raises `ValueError` with the estimate and the alternative."""
    check_choice("method", method, METHODS)
    nbytes = dense_operator_bytes(curv)
    if method == "auto":
        return "dense" if curv.size <= DENSE_MAX_P and fits(nbytes, memory_budget) else "matrix_free"
    if method == "dense":
        check_fits(f"method='dense' (the stability operator on symmetric matrices, p = {curv.size})", nbytes,
                   memory_budget, "use method='matrix_free' (Lanczos on T applied by set partitions) or 'auto'")
    return method


def second_moment_operator(curv: BatchCurvature, eta, rho, *, method: str = "auto", memory_budget=None):
    """T(Σ) = E_ξ[(I − ηA_ξ) Σ (I − ηA_ξ)] (THEORY.md §5).

    method="dense": the (p², p²) NumPy array acting on row-major vec(Σ). "matrix_free": a `LinearOperator` of
    size p² mapping vec(Σ) ↦ vec(T(sym Σ)). "auto" picks dense for p ≤ DENSE_MAX_P within ``memory_budget``.

    Example (commuting H_i, b = 1, η = 0.25, ρ = 0.5: T is diagonal on row-major vec(Σ), entry (i, j) =
    E[(1 − ηA_ξ,i)(1 − ηA_ξ,j)]: 0.578125 and 0.5 on the diagonal modes, 0.3125 on the off-diagonal ones; the
    matrix-free form agrees on symmetric Σ):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(Hs, batch_size=1)
      ...     T = second_moment_operator(curv, 0.25, 0.5)
      ...     op = second_moment_operator(curv, 0.25, 0.5, method="matrix_free")
      ...     agree = np.allclose(op.matvec(np.eye(2).ravel()), T @ np.eye(2).ravel(), rtol=0, atol=1e-12)
      >>> T.shape, np.diag(T).round(6).tolist(), bool(np.allclose(T, np.diag(np.diag(T)), rtol=0, atol=1e-12))
      ((4, 4), [0.578125, 0.3125, 0.3125, 0.5], True)
      >>> bool(agree)
      True
    """
    check_curvature(curv)
    check_step(eta, rho)
    method = resolve_method(curv, method, memory_budget)
    eta_, rho_ = jnp.asarray(eta, curv.dtype), jnp.asarray(rho, curv.dtype)
    if method == "dense":
        return np.asarray(_dense_T(curv.batch_as_data(), eta_, rho_))
    return linear_operator(Partial(apply_symmetrized, curv, eta_, rho_), curv.size**2, curv.dtype)


def symmetric_basis(p: int) -> np.ndarray:
    """An orthonormal basis of the symmetric p×p matrices, shape (d, p, p), d = p(p+1)/2."""
    out = []
    for i in range(p):
        for j in range(i, p):
            E = np.zeros((p, p))
            if i == j:
                E[i, i] = 1.0
            else:
                E[i, j] = E[j, i] = 1.0 / np.sqrt(2.0)
            out.append(E)
    return np.stack(out)


@dataclasses.dataclass(frozen=True)
class OperatorPieces:
    """T on symmetric matrices, T = I − η(P0 + ρP1) + η²(K1 + ρK2 + ρ²K3) in an orthonormal basis (d, d), and the
    basis (d, p, p) to map eigenvectors back (THEORY.md §5)."""

    P0: jax.Array
    P1: jax.Array
    K1: jax.Array
    K2: jax.Array
    K3: jax.Array
    basis: jax.Array

    def matrix(self, eta, rho):
        d = self.P0.shape[0]
        T = (jnp.eye(d, dtype=self.P0.dtype) - eta * (self.P0 + rho * self.P1)
             + eta**2 * (self.K1 + rho * self.K2 + rho**2 * self.K3))
        return 0.5 * (T + T.T)


jax.tree_util.register_dataclass(OperatorPieces, data_fields=["P0", "P1", "K1", "K2", "K3", "basis"],
                                 meta_fields=[])


@jax.jit
def _pieces(curv, U):
    H = expected_product(curv, ("H",))
    H2 = expected_product(curv, ("H", "H"))

    def one(Sigma):
        K1, K2, K3 = _quadratic_parts(curv, Sigma)
        return jnp.stack([H @ Sigma + Sigma @ H, H2 @ Sigma + Sigma @ H2, K1, K2, K3])
    images = lax.map(one, U)  # (d, 5, p, p)
    proj = jnp.einsum("cpq,dkpq->kcd", U, images)  # piece k: ⟨U_c, image of U_d⟩
    return proj


def operator_pieces(curv: BatchCurvature, *, memory_budget=None) -> OperatorPieces:
    """The five η-, ρ-independent pieces of T on symmetric matrices (dense; `ValueError` over the budget).

    Example (d = p(p+1)/2 = 3; ``pieces.matrix(η, ρ)`` is T in the orthonormal basis, here with the eigenvalues
    0.3125, 0.5, 0.578125 of the commuting example at η = 0.25, ρ = 0.5, b = 1; P0 = the map Σ ↦ HΣ + ΣH):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     pieces = operator_pieces(BatchCurvature.from_hessians(Hs, batch_size=1))
      ...     ev = np.linalg.eigvalsh(pieces.matrix(0.25, 0.5))
      >>> pieces.P0.shape, pieces.basis.shape, ev.round(6).tolist()
      ((3, 3), (3, 2, 2), [0.3125, 0.5, 0.578125])
    """
    resolve_method(check_curvature(curv), "dense", memory_budget)
    U = jnp.asarray(symmetric_basis(curv.size), curv.dtype)
    P = _pieces(curv.batch_as_data(), U)  # c_σ as data: one program for every b ≥ 2 and both samplings
    return OperatorPieces(P[0], P[1], P[2], P[3], P[4], U)
