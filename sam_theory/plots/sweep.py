"""Sweep figures: divergence maps over (η, ρ) grids, running-min gradient norms, and m-sharpness trends."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..stats import mean_se
from .style import new_figure, save


@dataclasses.dataclass(frozen=True)
class LightSAMGridData:
    """The payload of `lightsam.no_divergence_grid`: diverged fractions per (η, ρ) cell for both methods,
    2/λ_max(x₀) per seed, and LightSAM's running min ‖∇f‖ (lr, rho, seed, logged t) with the slope-fit window."""

    lrs: np.ndarray
    rhos: np.ndarray
    light_div: np.ndarray
    sam_div: np.ndarray
    edge: np.ndarray
    t: np.ndarray
    rmin: np.ndarray
    window: np.ndarray
    title: str = ""


@dataclasses.dataclass(frozen=True)
class MSharpnessData:
    """The payload of `msharpness.smaller_m_flatter`: per m, per data set, tr ∇²f(x_T) and the test loss."""

    m: list
    trace: dict
    test: dict
    title: str = "m-SAM"


def divergence_map(ax, frac, lrs, rhos, title, edge=None):
    """Fraction of seeds that diverged at each (η, ρ) cell, η on x and ρ on y (log-spaced cells)."""
    im = ax.imshow(np.asarray(frac).T, origin="lower", cmap="Reds", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(lrs)), [f"{v:.2g}" for v in lrs])
    ax.set_yticks(range(len(rhos)), [f"{v:g}" for v in rhos])
    for i in range(len(lrs)):
        for j in range(len(rhos)):
            ax.text(i, j, f"{frac[i][j]:.2g}", ha="center", va="center", fontsize=8,
                    color="white" if frac[i][j] > 0.5 else "black")
    if edge is not None:  # 2/λ_max at init, placed on the log-η axis by interpolation
        x = np.interp(np.log10(np.mean(edge)), np.log10(lrs), np.arange(len(lrs)))
        ax.axvline(x, color="tab:blue", ls="--", lw=1.5, label=f"2/λ_max(x₀) ≈ {np.mean(edge):.2g} (seed mean)")
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("radius ρ")
    ax.set_title(title, fontsize=9)
    return im


def plot_lightsam_grid(data: LightSAMGridData, path):
    """Divergence maps of SAM and LightSAM over the (η, ρ) grid, and LightSAM's running min ‖∇f‖ against t."""
    fig, axes = new_figure(3, width=4.8)
    lrs, rhos = data.lrs, data.rhos
    divergence_map(axes[0], data.sam_div, lrs, rhos, "SAM: fraction of seeds diverged", data.edge)
    im = divergence_map(axes[1], data.light_div, lrs, rhos, "LightSAM-AdaGradNorm: fraction diverged",
                        data.edge)
    fig.colorbar(im, ax=axes[:2], shrink=0.8, label="fraction of seeds diverged")
    ax = axes[2]
    t, rmin = np.asarray(data.t), np.asarray(data.rmin)  # (lr, rho, seed, T)
    colors = __import__("matplotlib").colormaps["viridis"](np.linspace(0.05, 0.85, len(lrs)))
    j = len(rhos) // 2
    pos = t > 0
    for i, lr in enumerate(lrs):
        curve = np.exp(np.log(rmin[i, j][:, pos]).mean(0))
        ax.loglog(t[pos], curve, color=colors[i], lw=2, label=f"η={lr:.2g}, ρ={rhos[j]:g}")
    ref = np.log(t[pos] + 1.0) / np.sqrt(t[pos])
    anchor = np.exp(np.log(rmin[:, j][..., pos][..., -1]).mean())
    ax.loglog(t[pos], ref * anchor / ref[-1], "k--", lw=1.2, label="∝ log t/√t")
    win = np.asarray(data.window)
    ax.axvspan(t[win].min(), t[win].max(), color="grey", alpha=0.12, label="slope-fit window")
    ax.set_xlabel("step t")
    ax.set_ylabel("running min of ‖∇f(x_s)‖, s ≤ t (geometric seed mean)")
    ax.set_title("LightSAM: min ‖∇f‖ decays at every η", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("LightSAM vs SAM over a 3-decade (η, ρ) grid — " + data.title, fontsize=10)
    return save(fig, path)


def plot_msharpness(data: MSharpnessData, path):
    """tr ∇²f(x_T) and log10 test loss against m: one grey line per data set, mean ± 2 SE in red."""
    fig, axes = new_figure(2, width=4.8)
    ms = data.m
    for ax, key, label in [(axes[0], "trace", "tr ∇²f(x_T)"), (axes[1], "test", "test loss f_test(x_T)")]:
        vals = [np.asarray(getattr(data, key)[m]) for m in ms]
        if key == "test":
            vals = [np.log10(v) for v in vals]
            label = "log10 " + label
        for s in range(len(vals[0])):
            ax.plot(ms, [v[s] for v in vals], color="grey", alpha=0.35, lw=0.8)
        mean, se = mean_se(np.stack(vals, axis=1), axis=0)
        ax.errorbar(ms, mean, yerr=2 * se, color="tab:red", lw=2, capsize=4, label="mean ± 2 SE over data sets")
        ax.set_xscale("log")
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.set_xlabel("micro-batch size m (m = b: n-SAM)")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    axes[0].set_title("flatness (trace of the Hessian) vs m", fontsize=9)
    axes[1].set_title("generalization vs m (grey: one data set; the verdict pairs them)", fontsize=9)
    fig.suptitle(data.title, fontsize=10)
    return save(fig, path)
