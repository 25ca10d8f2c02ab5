"""Measure linear convergence against Theorem B (THEORY.md §6): many batch seeds, seed-mean ± SE, the bound.

`train_seeds` is the vmapped trainer (one compile per shape) shared by every convergence check;
`check_linear_convergence` runs it on one problem and compares the seed-mean of f(x_t) with
(1 − 2μηc)^t f(x_0) at every logged t, allowing only the Monte Carlo error of the mean (``mc_slack_se`` · SE_t).
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ..optim import Optimizer, sam, sgd, usam
from ..problems import Problem
from ..train import log_steps, run_many, validate_batch
from ..validation import check_choice, check_int, check_nonnegative, check_positive
from .theorem_b_constants import Constants, constants as compute_constants
from .rates import LinearRate, fit_linear_rate
from .theorem_b import TheoremB, admissible_hyperparameters, theorem_b

METHODS = ("usam", "sgd", "sam")
DEFAULT_MC_SLACK_SE = 3.0


def train_seeds(problem: Problem, optimizer: Optimizer, keys, *, steps: int, batch_size: int, log_every: int = 1,
                replace: bool = True, params=None, data=None):
    """Run ``optimizer`` once per key (`sam_theory.train.run_many`, the seed stack), from the same ``params``.

    ``data`` defaults to the problem's data (shared); pass a pytree stacked over the keys' axis to vary data per
    run (then ``problem`` only supplies the loss). Optimizer hyperparameters that are arrays are vmapped too.
    Returns (losses (seeds, T), diverged (seeds,), final params stacked over seeds).

    Example:
      >>> import jax
      >>> from sam_theory.optim import sgd
      >>> from sam_theory.problems import linear_regression
      >>> prob = linear_regression(n=4, p=10, seed=0)
      >>> losses, diverged, params = train_seeds(prob, sgd(0.5), jax.random.split(jax.random.key(0), 3), steps=10,
      ...                                        batch_size=2)
      >>> losses.shape, diverged.tolist()                          # (seeds, logged steps 0..10)
      ((3, 11), [False, False, False])
    """
    params = problem.init(jax.random.key(0)) if params is None else params
    zipped = ("seed",) + (("optimizer",) if np.ndim(jax.tree.leaves(optimizer.hparams)[0]) else ()) + (
        () if data is None else ("data",))
    out = run_many(problem, optimizer, keys, data=data, params=params, axes=(zipped,), steps=steps,
                   batch_size=batch_size, every=log_every, replace=replace)
    return np.asarray(out.losses), np.asarray(out.diverged), out.params


@dataclasses.dataclass(frozen=True)
class LinearConvergence:
    """The result of `check_linear_convergence`.

    Attributes:
      t: logged steps.  losses: f(x_t) per seed (seeds, T).  mean, se: seed mean and its standard error.
      bound: (1 − 2μηc)^t f(x_0) (None for normalized SAM, which Theorem B does not cover).
      theorem: the `TheoremB` constants at (η, ρ, b).  constants: the β, λ, μ used.
      fit: log-linear fit of the seed-mean (points above ``fit_floor`` · f(x_0)).
      seed_slopes: the fitted d log f/dt of every seed (same points).
      max_ratio: max over t ≥ 1 of mean/bound.  within_bound: mean ≤ bound + mc_slack_se · SE at every t and no
      seed diverged (None without a bound).  num_diverged: diverged seeds.  final_params: stacked over seeds.

    Example:
      >>> import jax
      >>> from sam_theory.convergence import check_linear_convergence
      >>> from sam_theory.problems import linear_regression
      >>> res = check_linear_convergence(linear_regression(n=4, p=10, seed=0), "sgd", batch_size=2, steps=20,
      ...                                seeds=2, key=jax.random.key(0))
      >>> isinstance(res, LinearConvergence), res.losses.shape
      (True, (2, 21))
    """

    method: str
    t: np.ndarray
    losses: np.ndarray
    mean: np.ndarray
    se: np.ndarray
    bound: np.ndarray | None
    theorem: TheoremB
    constants: Constants
    fit: LinearRate | None
    seed_slopes: np.ndarray
    max_ratio: float | None
    within_bound: bool | None
    num_diverged: int
    mc_slack_se: float
    final_params: object

    def curve(self) -> dict:
        """``{"t", "mean", "se", "bound", "lo", "hi"}`` (lo, hi: 10% and 90% seed quantiles) for
        `sam_theory.plots.plot_convergence`."""
        lo, hi = np.quantile(self.losses, [0.1, 0.9], axis=0)
        return {"t": self.t, "mean": self.mean, "se": self.se, "bound": self.bound, "lo": lo, "hi": hi}

    def summary(self) -> str:
        th = self.theorem
        out = (f"{self.constants}; K_b={th.K_b:.3g} ρ={th.rho:.3g} η={th.eta:.3g} c={th.c:.3f} "
               f"guaranteed rate 1−2μηc={th.rate:.6f}")
        if self.fit is not None:
            out += f", fitted rate {self.fit.rate:.6f} (R²={self.fit.r2:.3f})"
        if self.max_ratio is not None:
            out += f", max mean/bound={self.max_ratio:.3g}"
        return out


def _optimizer(method: str, eta, rho) -> Optimizer:
    return {"usam": lambda: usam(eta, rho), "sam": lambda: sam(eta, rho), "sgd": lambda: sgd(eta)}[method]()


def _fit(t, curve, floor):
    try:
        return fit_linear_rate(curve, t, floor=floor)
    except ValueError:  # fewer than 3 points above the floor (converged within two logs)
        return None


def check_linear_convergence(problem: Problem, method: str = "usam", *, eta=None, rho=None, batch_size: int,
                             steps: int, seeds: int, key, log_every: int = 1, params=None,
                             constants: Constants | dict | None = None, replace: bool = True,
                             mc_slack_se: float = DEFAULT_MC_SLACK_SE, fit_floor: float = 1e-20) -> LinearConvergence:
    """Train ``seeds`` runs of ``method`` (vmapped) and compare the seed-mean of f(x_t) with Theorem B (§6).

    Args:
      problem: a square-loss problem.  method: "usam" (Theorem B's algorithm), "sgd" (ρ = 0: Bassily–Belkin–Ma)
        or "sam" (normalized; trained and fitted, but Theorem B gives no bound for it).
      eta, rho: step and radius; None takes the c ≥ ½ edge of `admissible_hyperparameters` (ρ = 0 for sgd).
      batch_size: b.  steps: T.  seeds: number of batch-sampling seeds.  key: PRNG key of the seeds.
      log_every: log f every this many steps.  params: common start x_0 (``problem.init`` if None).
      constants: β, λ, μ (default `constants(problem, params)`: exact for quadratics, local otherwise).
      replace: batches with replacement (Theorem B's assumption).  mc_slack_se: the Monte Carlo slack in SE units.
      fit_floor: rate fits use points above fit_floor · f(x_0) (round-off plateau excluded).

    Example:
      >>> import jax
      >>> from sam_theory import float64
      >>> from sam_theory.problems import linear_regression
      >>> with float64():
      ...     res = check_linear_convergence(linear_regression(n=4, p=10, seed=0), "usam", batch_size=2, steps=50,
      ...                                    seeds=4, key=jax.random.key(0))
      >>> res.within_bound, res.mean.shape                         # seed mean ≤ (1 − 2μηc)^t f(x_0) + 3 SE
      (True, (51,))
    """
    method = check_choice("method", method, METHODS)
    steps, seeds = check_int("steps", steps), check_int("seeds", seeds, minimum=2)
    log_every = check_int("log_every", log_every)
    batch_size = validate_batch(problem, batch_size, replace)
    check_nonnegative("mc_slack_se", mc_slack_se)
    const = compute_constants(problem, params) if constants is None else constants
    if eta is None or rho is None:
        edge = admissible_hyperparameters(const, batch_size, rho_fraction=0.0 if method == "sgd" else 1.0)
        eta = edge.eta if eta is None else eta
        rho = edge.rho if rho is None else rho
    if method == "sgd":
        check_positive("eta", eta)
        if rho:
            raise ValueError(f"rho must be 0 for method='sgd', got {rho!r}")
    thm = theorem_b(const, eta, rho, batch_size)
    opt = _optimizer(method, thm.eta, thm.rho)
    keys = jax.random.split(key, seeds)
    losses, diverged, final = train_seeds(problem, opt, keys, steps=steps, batch_size=batch_size,
                                          log_every=log_every, replace=replace, params=params)
    t = log_steps(steps, log_every)
    mean, se = losses.mean(axis=0), losses.std(axis=0, ddof=1) / np.sqrt(seeds)
    floor = fit_floor * float(mean[0])
    fit = _fit(t, mean, floor)
    slopes = np.array([getattr(_fit(t, row, floor), "slope", np.nan) for row in losses])
    bound = max_ratio = within = None
    if method != "sam":
        bound = thm.bound(t, float(mean[0]))
        max_ratio = float(np.max(mean[1:] / bound[1:])) if t.size > 1 else 1.0
        within = bool(np.all(mean <= bound + mc_slack_se * se) and not diverged.any() and thm.applies)
    return LinearConvergence(method, t, losses, mean, se, bound, thm,
                             const if isinstance(const, Constants) else _as_constants(const, problem),
                             fit, slopes, max_ratio, within, int(diverged.sum()), float(mc_slack_se), final)


def _as_constants(c, problem) -> Constants:
    return Constants(float(c["beta"]), float(c["lam"]), float(c["mu"]), "given", problem.n, problem.num_params)
