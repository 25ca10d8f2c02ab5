"""Shared pieces of the experiments: the synthetic teacher–student problem, SGD-vs-SAM runs, per-seed metrics and
figures with error bars."""
from __future__ import annotations

import numpy as np

from sam_theory.plots.style import new_figure, save
from sam_theory.problems import two_layer_net

from .runner import ms

DATA_PROCESS = ("x ~ N(0, I_d); y = teacher(x) + σ·N(0, 1) with teacher a fixed random two-layer ReLU network of "
                "width `teacher_width` (standard parameterization, drawn from the data seed); clean test targets; "
                "student f(x) = Σ_j v_j relu(w_jᵀx), p = m(d + 1), LeCun init; square loss ½(f − y)²")

NOISELESS = "label noise σ = 0 (noiseless; chosen on tuning seeds, where SAM lost to SGD at σ = 0.5)"


def teacher_student(ctx, s: dict, width: int, **overrides):
    """The synthetic two-layer teacher–student problem of THEORY.md §3.2 at hidden width ``width`` (DATA_PROCESS),
    data drawn from ``ctx.data_seed``."""
    kw = dict(n=s["n"], d=s["d"], width=int(width), teacher="two_layer", teacher_width=s["teacher_width"],
              label_noise=s.get("label_noise", 0.0), loss=s.get("loss", "square"), n_test=s["n_test"],
              seed=ctx.data_seed, activation="relu")
    kw.update(overrides)
    return two_layer_net(**kw)


def synthetic_lr(s: dict, m: int) -> float:
    """η(m) = lr_c/(m + d) for the synthetic student of width m: its NTK diagonal at init is Θ(x, x) ≈ (m + d)/2
    for ‖x‖² ≈ d (standard parameterization), so η(m)·Θ stays constant across widths (a fixed η diverges at large m:
    tuning runs diverged at η = 0.05, m = 476)."""
    return s["lr_c"] / (m + s["d"])


def widths_for(params, d: int) -> list[int]:
    """Hidden widths m with m(d + 1) closest to each target parameter count."""
    return [max(1, int(round(p / (d + 1)))) for p in params]


def per_seed(res, what: str = "test_loss") -> np.ndarray:
    """The final ``what`` (test_loss, train_loss or test_accuracy) of a sweep whose only non-unit axis is the seed."""
    arr = {"test_loss": lambda: res.test_losses[..., -1], "train_loss": lambda: res.losses[..., -1],
           "test_accuracy": lambda: res.test_accuracy}[what]()
    arr = np.asarray(arr, dtype=float)
    if arr.size != len(res.coords["seed"]):
        raise ValueError(f"per_seed needs a sweep over seeds only, got axes {res.axes} of shape {res.shape}")
    return arr.reshape(-1)


def run_method(ctx, tag: str, problem, s: dict, method: str, *, seeds=None, params=None, **hparams):
    """One method at the settings ``s`` (lr, steps, batch_size, log_every) over ``seeds`` (default: the evaluation
    seeds); ``params``: a common initialization (default: each seed's own); ``hparams``: rho/temperature (array
    hyperparameters) and static options (m, …)."""
    grid = {"lr": [s["lr"]], **{k: [v] for k, v in hparams.items() if k in ("rho", "temperature")}}
    if seeds is not None:
        grid["seed"] = list(seeds)
    static = {k: v for k, v in hparams.items() if k not in grid}
    return ctx.sweep(f"{tag}/{method}" + "".join(f"_{k}{v}" for k, v in static.items()), problem, method, grid,
                     steps=s["steps"], batch_size=s["batch_size"], log_every=s.get("log_every", s["steps"]),
                     track_grad_norm=False, params=params, **static)


def sgd_and_sam_runs(ctx, tag: str, problem, s: dict) -> dict:
    """The sweeps of SGD and of SAM (ρ = s["rho"]): same base optimizer, steps, batches and init."""
    return {"sgd": run_method(ctx, tag, problem, s, "sgd"),
            "sam": run_method(ctx, tag, problem, s, "sam", rho=s["rho"])}


def sgd_and_sam(ctx, tag: str, problem, s: dict, what: str = "test_loss") -> dict:
    """Per-seed final ``what`` of SGD and of SAM (`sgd_and_sam_runs`)."""
    return {k: per_seed(res, what) for k, res in sgd_and_sam_runs(ctx, tag, problem, s).items()}


def errorbars(ax, x, samples, label: str, **kw):
    """Mean ± SE over the last axis (seeds) of ``samples`` against ``x``."""
    stats = ms(samples)
    return ax.errorbar(x, stats["mean"], yerr=stats["se"], capsize=3, marker=kw.pop("marker", "o"), label=label, **kw)


def label(ax, *, xlabel, ylabel, title, xlog=False, zero=False):
    """Axis labels, title, grid and legend; a log x axis and a zero line on request."""
    if xlog:
        ax.set_xscale("log")
    if zero:
        ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def finish(fig, ax, path, **kw):
    """`label` the last axes and save the figure."""
    label(ax, **kw)
    return save(fig, path)


__all__ = [
    "DATA_PROCESS", "NOISELESS", "teacher_student", "synthetic_lr", "widths_for", "per_seed", "run_method",
    "sgd_and_sam_runs", "sgd_and_sam", "errorbars", "label", "finish", "save", "new_figure"]
