"""η_c against the batch size b (THEORY.md §5, §4.1): the figure of `theorem_a.critical_lr_vs_batch_size`."""
from __future__ import annotations

import numpy as np

from .style import new_figure, save


def plot_critical_lr_vs_batch(data: dict, path):
    """η_c(b) for SGD (ρ = 0) and SAM (ρ > 0) on one problem, without replacement, b = 1, 2, 4, …, n (log-log),
    with the deterministic thresholds 2/a (SGD) and 2/(a + ρa²) (SAM) that η_c(n) reaches exactly (S_k = 0).

    ``data``: {"b": array, "curves": {label: {"eta_c": array, "deterministic": float}}, "n": int, "p": int}."""
    fig, ax = new_figure(width=6.5)
    b = np.asarray(data["b"])
    for k, (label, c) in enumerate(data["curves"].items()):
        ax.plot(b, c["eta_c"], "o-", color=f"C{k}", label=f"η_c(b), {label}")
        ax.axhline(c["deterministic"], color=f"C{k}", ls="--", lw=1,
                   label=f"full batch 2/λ_max(H + ρH²) = {c['deterministic']:.4g}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size b (without replacement)")
    ax.set_ylabel("critical learning rate η_c")
    ax.set_title(f"Linear stability threshold vs batch size (n = {data['n']}, p = {data['p']})\n"
                 "S_k by set partitions: no batch enumeration", fontsize=10)
    ax.legend(fontsize=8)
    return save(fig, path)
