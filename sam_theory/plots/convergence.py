"""Convergence figures (THEORY.md §6): log f(x_t) against t, one curve per p with a band over seeds and Theorem B's
bound dashed in the same colour; and the fitted rate against p with the guaranteed rate 1 − 2μηc."""
from __future__ import annotations

import numpy as np

from .style import new_figure, save

SWEEP_PROBLEMS = ("linear_regression",)


def _colors(num):
    import matplotlib
    return iter(matplotlib.colormaps["viridis"](np.linspace(0.05, 0.85, max(num, 1))))


def plot_convergence(curves: dict, path, *, title: str = "Convergence", label: str = "p", hlines: dict | None = None,
                     ylabel: str = "training loss f(x_t)"):
    """``curves[key] = {"t", "mean", "se", "bound"}`` (optional "lo", "hi"): seed-mean (solid) with a band over seeds
    (the "lo"–"hi" seed quantiles when given, else ±2 SE), and the
    Theorem-B bound (1 − 2μηc)^t f(x₀) dashed in the same colour where ``bound`` is not None. ``hlines`` maps a
    legend label to a horizontal reference level (e.g. the least-squares optimum f*)."""
    fig, ax = new_figure()
    colors = _colors(len(curves))
    for key, c in curves.items():
        color = next(colors)
        t, mean, se = np.asarray(c["t"]), np.asarray(c["mean"]), np.asarray(c["se"])
        name = f"{label}={key}" if label else str(key)
        ax.semilogy(t, mean, color=color, lw=2, label=f"{name}: seed mean")
        if c.get("lo") is not None:
            lo, hi = np.asarray(c["lo"]), np.asarray(c["hi"])
        else:
            lo, hi = np.maximum(mean - 2 * se, mean * 1e-3), mean + 2 * se
        ax.fill_between(t, lo, hi, color=color, alpha=0.25)
        if c.get("bound") is not None:
            ax.semilogy(t, c["bound"], color=color, ls="--", lw=1.2, label=f"{name}: Theorem B bound")
    for text, level in (hlines or {}).items():
        ax.axhline(level, color="k", ls=":", lw=1.2, label=text)
    ax.set_xlabel("step t")
    ax.set_ylabel(ylabel)
    band = "10–90% seed quantiles" if any(c.get("lo") is not None for c in curves.values()) else "±2 SE over seeds"
    dashed = "; dashed: (1−2μηc)^t f(x₀)" if any(c.get("bound") is not None for c in curves.values()) else ""
    ax.set_title(title + f"\n(band: {band}{dashed})", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    return save(fig, path)


def plot_rate(p_values, fitted, fitted_se, guaranteed, path, *, title: str = "Linear rate against p"):
    """Decay exponent −log r per step against p (log–log): fitted per seed (mean ± 2 SE over seeds) and the
    guaranteed −log(1 − 2μηc) of Theorem B. ``fitted`` are mean slopes d log f/dt (negative), ``guaranteed`` rates."""
    fig, ax = new_figure()
    p = np.asarray(p_values, dtype=float)
    decay, err = -np.asarray(fitted, dtype=float), 2 * np.asarray(fitted_se, dtype=float)
    ax.errorbar(p, decay, yerr=err, marker="o", capsize=4, lw=2, label="fitted −d log f/dt (mean ± 2 SE over seeds)")
    if guaranteed is not None:  # None for normalized SAM, which Theorem B does not cover
        ax.plot(p, -np.log(np.asarray(guaranteed, dtype=float)), "s--", lw=1.5,
                label="guaranteed −log(1 − 2μηc) (Theorem B)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of parameters p")
    ax.set_ylabel("decay exponent per step, −log r")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return save(fig, path)


def convergence_sweep(problem: str, p_values, *, method: str = "usam", steps: int = 300, seeds: int = 16,
                      batch_size: int = 4, n: int = 20, seed: int = 0, log_every: int | None = None) -> dict:
    """``{p: LinearConvergence}``: `check_linear_convergence` for each p, (η, ρ) at the c ≥ ½ edge (THEORY.md §6).

    Runs in float64. ``problem`` is "linear_regression" (n examples, p parameters; p must exceed n so that the
    problem interpolates and μ > 0).
    """
    import jax

    from ..convergence import check_linear_convergence
    from ..precision import float64
    from ..problems import linear_regression
    from ..validation import check_choice, check_int

    check_choice("problem", problem, SWEEP_PROBLEMS)
    n = check_int("n", n)
    for p in p_values:
        if check_int("p", p) <= n:
            raise ValueError(f"p must exceed n={n} (interpolation, μ > 0) for Theorem B, got p={p}")
    log_every = log_every or max(1, steps // 60)
    out = {}
    with float64():
        for p in p_values:
            out[p] = check_linear_convergence(linear_regression(n, p, seed=seed), method, batch_size=batch_size,
                                              steps=steps, seeds=seeds, key=jax.random.key(seed + p),
                                              log_every=log_every)
    return out


def sweep_title(results: dict, method: str, problem: str) -> str:
    any_res = next(iter(results.values()))
    return (f"{problem}, {method.upper()}, n={any_res.constants.n}, b={any_res.theorem.batch_size} with "
            f"replacement,\n{any_res.losses.shape[0]} seeds, (η, ρ) at the c ≥ ½ edge")
