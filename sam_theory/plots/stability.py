"""Figures of Theorem A (THEORY.md §5): the (η, ρ) stability phase diagram, Monte Carlo vs exact E‖e_t‖², and the
distance traces of the nonlinear escape test."""
from __future__ import annotations

import numpy as np

from .style import figure_for, new_figure, save

CURVE_STYLE = {"a": ("a + ρa² = 2/η", "C1", "--"), "s2": ("s₂ = 1/√(η(η−2ρ))", "C2", "--"),
               "s3": ("s₃ = (2η²ρ)^(−1/3)", "C3", ":"), "s4": ("s₄ = (ηρ)^(−1/2)", "C4", "-.")}


@figure_for("theorem_a.necessary_conditions_hold")
def plot_phase_diagram(data: dict, path):
    """r(T) on the (η, ρ) grid (colour, log scale), the exact boundary η_c(ρ) (r(T) = 1), the curves where each
    necessary condition becomes tight (each holds below its curve), and Monte Carlo outcomes of the linearized
    recursion (o: E‖e_T‖² < ‖e_0‖², x: grew; red marks a disagreement with r(T) ≷ 1 — e.g. at ρ = 0, η just
    above η_c, where r(T) ≈ 1.2 but E log|1 − ηh| < 0 in every direction: the mean square grows through rare batch
    sequences while typical paths decay, so a finite Monte Carlo mean misses the growth).

    ``data`` is `sam_theory.stability.phase.phase_diagram_data` (or the data of the check)."""
    etas, rhos, radii = np.asarray(data["etas"]), np.asarray(data["rhos"]), np.asarray(data["radii"])
    fig, ax = new_figure(width=7.5, height=6.0)
    mesh = ax.pcolormesh(rhos, etas, np.log10(np.maximum(radii.T, 1e-300)), shading="nearest", cmap="coolwarm",
                         vmin=-1, vmax=1)
    fig.colorbar(mesh, ax=ax, label="log₁₀ r(T)")
    ax.plot(rhos, data["eta_c"], "k-", lw=2.2, label="r(T) = 1 (η_c)")
    for name, curve in data["curves"].items():
        label, color, ls = CURVE_STYLE[name]
        ax.plot(rhos, np.asarray(curve), color=color, ls=ls, lw=1.6, label=label)
    ax.plot(rhos, 2 * rhos, color="0.4", lw=0.8, ls=(0, (1, 3)), label="η = 2ρ (s-bounds apply above)")
    sim = data.get("sim", [])
    for grew in (False, True):
        pts = [(r, e, pred == g) for e, r, g, pred in sim if g == grew]
        if not pts:
            continue
        r, e, agree = map(np.asarray, zip(*pts))
        marker = "x" if grew else "o"
        name = "MC: E‖e_T‖² grew" if grew else "MC: E‖e_T‖² decayed"
        style = dict(c="k") if grew else dict(facecolors="none", edgecolors="k")
        ax.scatter(r[agree], e[agree], marker=marker, s=28, linewidths=1.0, label=name, **style)
        if (~agree).any():
            ax.scatter(r[~agree], e[~agree], marker=marker, s=60, c="red", label=f"{name}, disagrees with r(T)")
    ax.set_ylim(0, etas.max())
    ax.set_xlim(rhos.min(), rhos.max())
    ax.set_xlabel("ρ (USAM radius)")
    ax.set_ylabel("η (learning rate)")
    b = data.get("batch_size", 1)
    ax.set_title(f"Linear stability of stochastic USAM (b = {b}, commuting H_i): stable below the black curve\n"
                 f"necessary conditions hold below each coloured curve", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, framealpha=0.9)
    return save(fig, path)


def plot_exact_vs_simulated(instances, path):
    """Per instance: Monte Carlo E f(x_t) of the optimizer (± 2 SE) against the exact ½ tr(HΣ_t) on both sides of
    η_c, and the SGD-operator control (dotted). ``instances``: the list of
    `sam_theory.checks.theorem_a.MCInstance` that `theorem_a.exact_vs_simulated` returns."""
    fig, axes = new_figure(ncols=len(instances), width=5.5)
    axes = np.atleast_1d(axes)
    for ax, inst in zip(axes, instances):
        for k, (factor, c) in enumerate(sorted(inst.curves.items())):
            ax.errorbar(c.t, c.mean, yerr=2 * np.asarray(c.se), fmt="o", ms=3, color=f"C{k}", capsize=2,
                        label=f"MC ± 2 SE, η = {factor}·η_c (r(T) = {c.r:.3f})")
            ax.plot(c.t, c.exact, "-", color=f"C{k}", label=f"exact ½ tr(HΣ_t), η = {factor}·η_c")
            ax.plot(c.t, c.sgd, ":", color=f"C{k}", label="control: SGD operator (ρ = 0)")
        ax.set_yscale("log")
        ax.set_xlabel("step t")
        ax.set_ylabel("E f(x_t)")
        ax.set_title(inst.label.split(",")[0] + f", η_c = {inst.eta_c:.4f}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("USAM on quadratic f_i: Monte Carlo of the optimizer vs exact Σ_{t+1} = T(Σ_t)")
    return save(fig, path)


@figure_for("theorem_a.nonlinear_escape")
def plot_escape(data: dict, path):
    """‖x_t − x*‖ of USAM from x* + e_0 on a diagonal linear net, below and above η_c. ``data``: the
    `sam_theory.checks.theorem_a.EscapeFigure` of `theorem_a.nonlinear_escape` (traces: η/η_c → EscapeTrace)."""
    fig, ax = new_figure(width=6.5)
    for k, (factor, tr) in enumerate(sorted(data.traces.items())):
        for m, d in enumerate(tr.distances):
            ax.plot(tr.t, d, color=f"C{k}", alpha=0.8,
                    label=(f"η = {factor}·η_c (r(T) = {tr.r:.3f}"
                           + (", marginal: null space of H)" if abs(tr.r - 1) < 1e-9 else ")")) if m == 0 else None)
    ax.axhline(100 * data.eps, color="k", ls="--", lw=1, label="escape threshold 100‖e_0‖")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("‖x_t − x*‖")
    ax.set_title("USAM started near an interpolating minimum (diagonal linear net)")
    ax.legend(fontsize=8)
    return save(fig, path)
