"""Edge-of-stability figures (THEORY.md §7): the SAM 2-cycle on a quadratic, and sharpness against the SAM edge."""
from __future__ import annotations

import dataclasses

import numpy as np

from .style import new_figure, save


@dataclasses.dataclass(frozen=True)
class TwoCycleData:
    """The payload of `eos.two_cycle`: ⟨x_t, v₁⟩ at t = 1..T, the closed-form amplitude ηρλ₁/(2 − ηλ₁), η, ρ, λ₁."""

    t: np.ndarray
    coord: np.ndarray
    amplitude: float
    lr: float
    rho: float
    lam1: float


@dataclasses.dataclass(frozen=True)
class SharpnessPath:
    """λ_max(H(x_t)) and the SAM edge λ_edge(‖∇f(x_t)‖) at the logged steps t."""

    t: np.ndarray
    sharpness: np.ndarray
    edge: np.ndarray


@dataclasses.dataclass(frozen=True)
class SamEdgeData:
    """The payload of `eos.sam_edge`: one path per SAM seed, the GD control path, η and ρ."""

    runs: list
    gd: SharpnessPath
    lr: float
    rho: float


def plot_two_cycle(data: TwoCycleData, path, *, last: int = 60):
    """Left: |⟨x_t, v₁⟩| − |c| on a log scale over the whole run; right: ⟨x_t, v₁⟩ over the last ``last`` steps
    with the closed-form lines ±ηρλ₁/(2 − ηλ₁)."""
    t, coord, amp = np.asarray(data.t), np.asarray(data.coord), float(data.amplitude)
    fig, (ax0, ax1) = new_figure(2)
    ax0.semilogy(t, np.maximum(np.abs(np.abs(coord) - amp) / amp, 1e-17), lw=1.2)
    ax0.set_xlabel("step t")
    ax0.set_ylabel("| |⟨x_t, v₁⟩| − |c| | / |c|")
    ax0.set_title("distance of the top coordinate to the 2-cycle", fontsize=9)
    ax0.grid(True, which="both", alpha=0.3)
    ax1.plot(t[-last:], coord[-last:], "o-", ms=3, lw=0.8, label="⟨x_t, v₁⟩ (normalized SAM)")
    for s in (1, -1):
        ax1.axhline(s * amp, color="k", ls="--", lw=1, label="±ηρλ₁/(2 − ηλ₁)" if s == 1 else None)
    ax1.set_xlabel("step t")
    ax1.set_ylabel("⟨x_t, v₁⟩")
    ax1.set_title(f"last {last} steps: η={data.lr:g}, ρ={data.rho:g}, λ₁={data.lam1:g}", fontsize=9)
    ax1.legend(fontsize=8, loc="center right")
    ax1.grid(True, alpha=0.3)
    fig.suptitle("SAM 2-cycle on f = ½xᵀHx (THEORY.md §7)", fontsize=10)
    return save(fig, path)


def plot_sam_edge(data: SamEdgeData, path):
    """Sharpness λ_max(H(x_t)), the SAM edge λ_edge(‖∇f(x_t)‖) and 2/η against t (left: SAM seeds; right: the GD
    control)."""
    lr, rho = data.lr, data.rho
    fig, (ax0, ax1) = new_figure(2)
    for k, run in enumerate(data.runs):
        line, = ax0.plot(run.t, run.sharpness, lw=1.5, label=f"seed {k}: λ_max(H(x_t))")
        ax0.plot(run.t, run.edge, ls="--", lw=1.2, color=line.get_color(), label=f"seed {k}: SAM edge")
    gd = data.gd
    ax1.plot(gd.t, gd.sharpness, lw=1.5, label="GD: λ_max(H(x_t))")
    ax1.semilogy(gd.t, gd.edge, ls="--", lw=1.2, label="SAM edge at GD's ‖∇f(x_t)‖")
    for ax in (ax0, ax1):
        ax.axhline(2 / lr, color="k", ls=":", lw=1.2, label="2/η")
        ax.set_xlabel("step t")
        ax.set_ylabel("curvature")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax0.set_title(f"full-batch normalized SAM, η={lr:g}, ρ={rho:g}: sharpness tracks the edge", fontsize=9)
    ax1.set_title("control: GD (ρ = 0), edge (ρ = %g) computed from its gradient norm" % rho, fontsize=9)
    fig.suptitle("Two-layer tanh net: sharpness vs SAM edge (‖∇f‖/2ρ)(√(1+8ρ/(η‖∇f‖)) − 1) (THEORY.md §7)",
                 fontsize=10)
    return save(fig, path)
