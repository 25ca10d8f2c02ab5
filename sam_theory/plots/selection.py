"""Theorem A (iv) figure: Hessian moments of the minima SGD and SAM reach, against the width knob (THEORY.md §5)."""
from __future__ import annotations

import numpy as np

from ..stats import nan_mean_se
from .style import save

MOMENT_LABELS = {"a": r"$a = \lambda_{\max}(H)$", "s2": r"$s_2 = \lambda_{\max}(S_2)^{1/2}$",
                 "s3": r"$s_3 = \lambda_{\max}(S_3)^{1/3}$", "s4": r"$s_4 = \lambda_{\max}(S_4)^{1/4}$"}


def plot_moments_vs_width(panels, path, *, title: str = "Minima selected by SGD and SAM (Theorem A iv)"):
    """Two rows per sweep, one column per moment. Upper row: seed mean ± 2 SE of SGD's and SAM's moment at the
    reached minimum against the knob; lower row: the relative gap (SGD − SAM)/SGD per seed over the pairs where both
    runs reached a minimum, mean ± 2 SE (what the check tests, at every knob value).

    ``panels``: the list of `sam_theory.checks.theorem_a_selection.WidthPanel` that `theorem_a.gap_grows_with_width`
    returns (``label``, ``knob``, ``points``: knob value → `Selection` with ``results`` (`MinimaMoments`), ``eta``,
    ``rho``, ``gap(m, relative)``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, grid = plt.subplots(2 * len(panels), 4, figsize=(14.4, 3.3 * 2 * len(panels)), constrained_layout=True)
    def band(vals):  # per knob value (the number of kept pairs may differ): mean and 2 SE over finite seeds
        m, se = np.array([nan_mean_se(np.asarray(v, dtype=float)) for v in vals]).T
        return m, 2 * se
    for row, panel in enumerate(panels):
        knobs = np.array(sorted(panel.points))
        sels = [panel.points[k] for k in knobs]
        top, bottom = grid[2 * row], grid[2 * row + 1]
        for ax, gap_ax, (m, label) in zip(top, bottom, MOMENT_LABELS.items()):
            for name, color, marker in (("SGD", "tab:blue", "o"), ("SAM", "tab:red", "s")):
                mean, err = band([s.results.moment(name, m)[s.ok] for s in sels])
                ax.errorbar(knobs, mean, yerr=err, color=color, marker=marker, capsize=3, lw=1.5,
                            label=name if name == "SGD" else "SAM (USAM, ρ = κ_ρ/λ₀)")
            mean, err = band([s.gap(m, relative=True) for s in sels])
            gap_ax.errorbar(knobs, mean, yerr=err, color="k", marker="D", capsize=3, lw=1.5)
            gap_ax.axhline(0.0, color="gray", lw=0.8, ls="--")
            gap_ax.set_ylabel("rel. gap (SGD − SAM)/SGD")
            gap_ax.set_xlabel(f"{panel.label}: knob {panel.knob} (log scale)")
            for axis in (ax, gap_ax):
                axis.set_xscale("log")
                axis.set_xticks(knobs)
                axis.set_xticklabels([str(k) for k in knobs])
                axis.xaxis.set_minor_formatter(NullFormatter())
                axis.grid(True, alpha=0.3)
            ax.set_ylabel(label)
            etas = ", ".join(f"{s.eta:.3g}" for s in sels)
            ax.set_title(f"{panel.label}: {label}\nη = {etas}", fontsize=8)
        top[0].legend(fontsize=7)
    fig.suptitle(f"{title}; error bars ±2 SE over seeds", fontsize=10)
    return save(fig, path)

