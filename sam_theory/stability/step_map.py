"""The linearized stochastic USAM step (THEORY.md §5): B_ξ = I − ηA_ξ, A_ξ = H_ξ + ρH_ξ², and its mean E[A_ξ].

Near an interpolating minimum x*, with e_t = x_t − x*, e_{t+1} = B_ξ e_t (ρ = 0 is SGD). The mean iterate obeys
E e_{t+1} = (I − ηE[A_ξ]) E e_t, E[A_ξ] = H + ρE[H_ξ²], so λ_max(E[A_ξ]) ≤ 2/η is necessary for stability, and a
direction v with vᵀE[A_ξ]v < 0 makes every η > 0 unstable (E[(vᵀB_ξv)²] ≥ (1 − η vᵀE[A_ξ]v)² > 1).
E[H_ξ²] is exact by set partitions (`sam_theory.curvature.expected_product`).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..curvature import BatchCurvature, expected_product, lanczos, linear_operator
from ..validation import check_nonnegative, check_positive


def check_curvature(curv) -> BatchCurvature:
    """`ValueError` unless ``curv`` is a `BatchCurvature`."""
    if not isinstance(curv, BatchCurvature):
        raise ValueError(f"curv must be a BatchCurvature (BatchCurvature.from_hessians / .from_problem), "
                         f"got {type(curv).__name__}")
    return curv


def check_step(eta, rho) -> None:
    """η > 0 (when given), ρ ≥ 0 (`ValueError` naming the argument)."""
    if eta is not None:
        check_positive("eta", eta)
    check_nonnegative("rho", rho)


def step_map(curv: BatchCurvature, rows, V, eta, rho):
    """B_ξ V = V − η(H_ξ V + ρH_ξ²V) for one batch ``rows`` (b,) on the columns of V (p, m).

    Example (the batch ξ = {1}, row 0: B = I − η(H_1 + ρH_1²) = diag(1 − 0.25·7.5, 1 − 0.25·4)):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> import jax.numpy as jnp
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(Hs, batch_size=1)
      ...     B = step_map(curv, jnp.array([0]), jnp.eye(2), 0.25, 0.5)
      >>> (np.round(np.asarray(B), 6) + 0.0).tolist()
      [[-0.875, 0.0], [0.0, 0.0]]
    """
    HV = curv.batch_apply(rows, V)
    return V - eta * (HV + rho * curv.batch_apply(rows, HV))


def mean_step(curv: BatchCurvature, rho, V=None):
    """E[A_ξ] V = H V + ρ E[H_ξ²] V (V None: the dense (p, p) matrix).

    Example (b = 1: E[H_ξ²] = (H_1² + H_2²)/2 = diag(5, 2), so E[A_ξ] = diag(2 + 0.5·5, 1 + 0.5·2); full batch
    b = n: E[A_ξ] = H + ρH² = diag(4, 1.5)):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     one = mean_step(BatchCurvature.from_hessians(Hs, batch_size=1), 0.5)
      ...     full = mean_step(BatchCurvature.from_hessians(Hs, batch_size=2), 0.5)
      >>> np.diag(np.asarray(one)).round(6).tolist(), np.diag(np.asarray(full)).round(6).tolist()
      ([4.5, 2.0], [4.0, 1.5])
    """
    return expected_product(curv, ("H",), (), V) + rho * expected_product(curv, ("H", "H"), (), V)


def _mean_step_matvec(curv, rho, v):
    return mean_step(curv, rho, v[:, None])[:, 0]


@dataclasses.dataclass(frozen=True)
class MeanStepSpectrum:
    """The ends of the spectrum of E[A_ξ] = H + ρE[H_ξ²] (THEORY.md §5).

    Attributes: top, bottom: λ_max and λ_min (Lanczos: the Ritz values ± their residual norms, i.e. an upper bound
    on λ_max and a lower bound on λ_min); rho.

    Example (returned by `mean_step_spectrum`; E[A_ξ] = diag(4.5, 2) for these commuting H_i at b = 1, ρ = 0.5):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     spec = mean_step_spectrum(BatchCurvature.from_hessians(Hs, batch_size=1), 0.5)
      >>> round(spec.top, 6), round(spec.bottom, 6), spec.rho
      (4.5, 2.0, 0.5)
    """

    top: float
    bottom: float
    rho: float


@functools.partial(jax.jit, static_argnames=("iters",))
def _ends_matrix_free(curv, rho, key, iters):
    res = lanczos(linear_operator(jax.tree_util.Partial(_mean_step_matvec, curv, rho), curv.size, curv.dtype),
                  iters, key)
    return res.ritz_values[-1] + res.residual_norms[-1], res.ritz_values[0] - res.residual_norms[0]


@jax.jit
def _dense_mean_step(curv, rho):
    return mean_step(curv, rho)


def mean_step_spectrum(curv: BatchCurvature, rho, *, dense: bool | None = None, key=None) -> MeanStepSpectrum:
    """λ_max and λ_min of E[A_ξ], dense (eigvalsh, for p ≤ 400 unless ``dense`` says) or by Lanczos.

    Example (E[A_ξ] = H + ρE[H_ξ²] = diag(4.5, 2) at b = 1, ρ = 0.5, dense; ``dense=False`` runs Lanczos):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     spec = mean_step_spectrum(BatchCurvature.from_hessians(Hs, batch_size=1), 0.5)
      >>> round(spec.top, 6), round(spec.bottom, 6), round(2 / spec.top, 6)     # η_max = 2/λ_max(E[A_ξ])
      (4.5, 2.0, 0.444444)
    """
    check_curvature(curv)
    check_step(None, rho)
    dense = curv.size <= 400 if dense is None else dense
    rho_ = jnp.asarray(rho, curv.dtype)
    if dense:
        EA = np.asarray(_dense_mean_step(curv.batch_as_data(2), rho_))  # one program for all b ≥ 2
        ev = np.linalg.eigvalsh(0.5 * (EA + EA.T))
        return MeanStepSpectrum(float(ev[-1]), float(ev[0]), float(rho))
    top, bottom = _ends_matrix_free(curv.batch_as_data(2), rho_, jax.random.key(0) if key is None else key, min(curv.size, 80))
    return MeanStepSpectrum(float(top), float(bottom), float(rho))


def mean_step_sharpness(curv: BatchCurvature, rho, **kwargs) -> float:
    """λ_max(E[A_ξ]) = λ_max(H + ρE[H_ξ²]); stability needs it ≤ 2/η (THEORY.md §5, the mean iterate).

    Example (full batch b = n: E[A_ξ] = H + ρH², so the sharpness is a + ρa² = 2 + 0.5·4 for a = λ_max(H) = 2):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     full = BatchCurvature.from_hessians(Hs, batch_size=2)
      ...     sgd, usam = mean_step_sharpness(full, 0.0), mean_step_sharpness(full, 0.5)
      >>> round(sgd, 6), round(usam, 6)
      (2.0, 4.0)
    """
    return mean_step_spectrum(curv, rho, **kwargs).top
