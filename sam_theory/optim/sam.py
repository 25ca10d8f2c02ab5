"""SGD, SAM (Foret et al.) and USAM (unnormalized SAM), THEORY.md §2.

Every step evaluates the batch gradient g = ∇f_ξ(x_t) on the step's batch ξ and, for SAM/USAM, the descent
gradient ĝ = ∇f_ξ(x_t + ε_t) on the same batch; the base optimizer (``base=``, `descent.BASES`) turns ĝ into
the update (SGD: x − η ĝ).
"""
from __future__ import annotations

from ..validation import check_nonnegative
from .base import Optimizer
from .core import DEFAULT_EPS, make_optimizer, perturb_then_descend
from .scaling import normalized, scale_to


def sam_perturbation(g, rho, eps=DEFAULT_EPS, normalize=True):
    """ε = ρ g / (‖g‖ + eps) if ``normalize`` else ρ g (THEORY.md §2), as one scaling of g (`optim.scaling`).

    The guard ``eps`` keeps ε = 0 (not NaN) at an exact stationary point g = 0, where optax's SAM gives NaN; a
    positive eps is raised to the smallest normal number of the accumulation dtype so it never rounds to zero
    (float16), and eps = 0 is the unguarded normalization. Norm and scale are computed in float32 for
    float16/bfloat16 gradients, and ε is rounded once to g's dtype: relative error within a few ulps of the dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> [round(v, 6) for v in sam_perturbation(jnp.array([3.0, 4.0]), 0.5).tolist()]
      [0.3, 0.4]
      >>> sam_perturbation(jnp.zeros(2), 0.5).tolist()          # finite at a stationary point
      [0.0, 0.0]
    """
    if normalize:
        return normalized(g, rho, eps)
    return scale_to(g, rho)


def sam_perturb(opt, params, g, state, batch, key):
    """The perturbation of SAM/USAM/m-SAM/n-SAM for `core.perturb_then_descend` (options ``normalize``, ``eps``)."""
    return sam_perturbation(g, opt.hparams["rho"], opt.option("eps", DEFAULT_EPS), opt.option("normalize", True)), state


SGD = perturb_then_descend(None)
SAM = perturb_then_descend(sam_perturb)


def sgd(lr, *, base: str = "sgd", base_hparams=None) -> Optimizer:
    """SGD / GD: x ← x − η ∇f_ξ(x) (THEORY.md §2). ``lr`` = η > 0.

    ``base`` ("sgd", "momentum", "adam", "adagrad_norm", "adagrad") and ``base_hparams`` (e.g. {"momentum": 0.9})
    pick the optimizer applied to the gradient (`sam_theory.optim.descent`).

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.optim import Batch
      >>> batch = Batch(jnp.zeros(1), lambda x, ex: 0.5 * jnp.sum(x ** 2))   # f(x) = ½‖x‖², ∇f = x
      >>> x = jnp.array([2.0])
      >>> opt = sgd(0.1)                                    # x − η∇f(x)
      >>> y, state = opt.step(x, opt.init(x), batch)
      >>> round(float(y[0]), 6)
      1.8
    """
    return make_optimizer("sgd", SGD, lr=lr, base=base, base_hparams=base_hparams)


def sam(lr, rho, *, eps: float = DEFAULT_EPS, base: str = "sgd", base_hparams=None) -> Optimizer:
    """SAM: ε = ρ g/(‖g‖ + eps), ĝ = ∇f_ξ(x + ε), same batch ξ; x ← x − η ĝ with base SGD (THEORY.md §2).

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  eps: normalization guard δ (1e-12), so a step at g = 0 returns x unchanged.
      base, base_hparams: the optimizer applied to ĝ (`sam_theory.optim.descent`), default plain SGD.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.optim import Batch
      >>> batch = Batch(jnp.zeros(1), lambda x, ex: 0.5 * jnp.sum(x ** 2))   # f(x) = ½‖x‖², ∇f = x
      >>> x = jnp.array([2.0])
      >>> opt = sam(0.1, 0.5)                               # ε = ρ∇f/‖∇f‖ = 0.5; x − η∇f(x + ε)
      >>> y, state = opt.step(x, opt.init(x), batch)
      >>> round(float(y[0]), 6)
      1.75
    """
    check_nonnegative("rho", rho)
    return make_optimizer("sam", SAM, lr=lr, hparams={"rho": rho}, options=(("normalize", True),), base=base,
                          eps=eps, base_hparams=base_hparams)


def usam(lr, rho, *, base: str = "sgd", base_hparams=None) -> Optimizer:
    """USAM (unnormalized SAM): ε = ρ g, x ← x − η ∇f_ξ(x + ε), same batch ξ (THEORY.md §2, §5, §6).

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.optim import Batch
      >>> batch = Batch(jnp.zeros(1), lambda x, ex: 0.5 * jnp.sum(x ** 2))   # f(x) = ½‖x‖², ∇f = x
      >>> x = jnp.array([2.0])
      >>> opt = usam(0.1, 0.5)                              # ε = ρ∇f = 1; x − η∇f(x + ε)
      >>> y, state = opt.step(x, opt.init(x), batch)
      >>> round(float(y[0]), 6)
      1.7
    """
    check_nonnegative("rho", rho)
    return make_optimizer("usam", SAM, lr=lr, hparams={"rho": rho}, options=(("normalize", False),), base=base,
                          base_hparams=base_hparams)
