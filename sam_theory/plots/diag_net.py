"""Diagonal-linear-network figures (THEORY.md §8, §9)."""
from __future__ import annotations

import dataclasses

import numpy as np
from matplotlib.ticker import NullFormatter

from .style import finish, new_figure


@dataclasses.dataclass(frozen=True)
class DiagNetRhoData:
    """Final test losses: ``gd`` (seeds,), ``nsam`` and ``one_sam`` (ρ, seeds) over ``rho_af`` (A–F convention)."""

    rho_af: np.ndarray
    gd: np.ndarray
    nsam: np.ndarray
    one_sam: np.ndarray
    lr_label: str = "η=10/d"


@dataclasses.dataclass(frozen=True)
class ConservedQuantityData:
    """Relative drift of c = u² − v² at fixed time ηt against η for GD and the n-SAM control, and fitted slopes."""

    eta: np.ndarray
    drift: np.ndarray
    drift_sam: np.ndarray
    slope: float
    slope_sam: float
    rho_control: float


@dataclasses.dataclass(frozen=True)
class ImplicitBiasData:
    """The GD limit β = u⊙v, the hyperbolic-entropy minimizer, the min-ℓ2 interpolant and θ★."""

    beta_gd: np.ndarray
    beta_potential: np.ndarray
    beta_l2: np.ndarray
    theta_star: np.ndarray


def plot_diag_net_vs_rho(data: DiagNetRhoData, path):
    """Test loss against ρ (log–log), seed mean with min–max band; GD as a horizontal line."""
    rho = np.asarray(data.rho_af)
    fig, ax = new_figure()
    gd = np.asarray(data.gd)
    ax.axhline(np.exp(np.log(gd).mean()), color="k", lw=1.5, label="GD (geometric mean over seeds)")
    ax.axhspan(gd.min(), gd.max(), color="k", alpha=0.08)
    for key, label, color in (("nsam", "n-SAM (full-gradient perturbation)", "tab:orange"),
                              ("one_sam", "1-SAM (per-example perturbations)", "tab:blue")):
        vals = np.asarray(getattr(data, key))
        ax.loglog(rho, np.exp(np.log(vals).mean(axis=1)), "o-", color=color, lw=1.8, label=label)
        ax.fill_between(rho, vals.min(axis=1), vals.max(axis=1), color=color, alpha=0.2)
    ax.set_yscale("log")
    return finish(fig, ax, path, xlabel="ρ (A–F convention; ours: ρ for n-SAM, 2ρ for 1-SAM)",
                  ylabel="test loss (1/2n_test)‖X_test β − y_test‖²",
                  title=f"Diagonal linear net n=20, d=30, k=3, α=0.1, {data.lr_label} (band: min–max over seeds)")


def plot_conserved_quantity(data: ConservedQuantityData, path):
    """Drift of c = u² − v² at a fixed time T = ηt against η (log–log) with a slope-1 guide."""
    eta = np.asarray(data.eta)
    fig, ax = new_figure()
    ax.loglog(eta, data.drift, "o-", label=f"GD: fitted slope {data.slope:.3f}")
    ax.loglog(eta, data.drift_sam, "s-", label=f"n-SAM ρ={data.rho_control:g} (control): slope {data.slope_sam:.3f}")
    ax.loglog(eta, data.drift[0] * eta / eta[0], "k--", lw=1, label="slope 1")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(eta, [f"{e:g}" for e in eta])
    return finish(fig, ax, path, xlabel="step size η", ylabel="max_i |c_i,T − c_i,0| / c_0 at T = ηt fixed",
                  title="Drift of c = u² − v² (diagonal net, THEORY.md §9)")


def plot_implicit_bias(data: ImplicitBiasData, path):
    """Coordinates of the GD limit against the hyperbolic-entropy minimizer and the min-ℓ2 interpolant."""
    fig, ax = new_figure()
    idx = np.arange(len(data.beta_gd))
    ax.plot(idx, data.theta_star, "k*", ms=10, label="θ★ (sparse)")
    ax.plot(idx, data.beta_l2, "s", mfc="none", color="tab:gray", label="min-ℓ2 interpolant X⁺y")
    ax.plot(idx, data.beta_potential, "o", mfc="none", ms=9, color="tab:orange",
            label="argmin_{Xβ=y} φ_c∞(β)")
    ax.plot(idx, data.beta_gd, "x", color="tab:blue", label="GD limit u⊙v")
    return finish(fig, ax, path, xlabel="coordinate i", ylabel="β_i", grid="major",
                  title="Implicit bias of GD on u⊙v: hyperbolic-entropy minimizer (THEORY.md §9)")
