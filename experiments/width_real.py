"""§10.1 on real data: the SAM − SGD test-accuracy gap of a 3-layer MLP on handwritten digits against #params.

Data: scikit-learn's bundled `load_digits` (1,797 8×8 grey-level images of the digits 0–9, the test part of the UCI
"Optical Recognition of Handwritten Digits" set by E. Alpaydin and C. Kaynak, 1998; UCI licence CC BY 4.0;
scikit-learn itself is BSD-3-Clause; no download). Pixels / 16; a random split (permutation from the data seed)
into 1,000 training and 797 test images. Model: `sam_theory.problems.MLPClassifier` with two hidden ReLU layers of
width h (three weight layers, p = h² + 76h + 10), softmax cross-entropy. SGD against normalized SAM (ρ = 0.05), same
base optimizer, learning rate, steps, batches and init. Verdict: slope of the per-seed accuracy gap SAM − SGD over
log10 p, positive beyond 2 SE. Mirrors the paper's MNIST MLP panel.
"""
from __future__ import annotations

import numpy as np

from sam_theory.problems import MLPClassifier, mlp_num_params

from .common import errorbars, finish, label, new_figure, sgd_and_sam
from .runner import Outcome, fmt, ms, mse, positive, slopes, table

NAME = "width_real"
SECTION = "§10.1"
CLAIM = ("SAM's generalization gain over SGD (test loss or accuracy) grows with the number of parameters (official "
         "figure, synthetic 2-layer MLP: SGD−SAM validation-loss gap 0.026 → 0.083 as parameters go 1e4 → 1e5).")
PAPER = ("the paper's real-data MLP panel (MNIST, 3-layer MLP): the SAM − SGD test-accuracy gain grows with #params. "
         "THEORY.md quotes no numbers for it; here MNIST is replaced by the bundled 8×8 digits.")
SETUP = ("scikit-learn `load_digits` (UCI optical digits, CC BY 4.0), 1,000 train / 797 test images, pixels/16; 3-layer "
         "ReLU MLP 64 → h → h → 10, LeCun init, cross-entropy; SGD vs SAM (ρ = 0.05), plain SGD base, η = 0.1, "
         "batch 32, the same steps; widths h with p = h² + 76h + 10 from 5e3 to 5e5 log-spaced; float32.")

SETTINGS = {
    "full": {"params": np.logspace(np.log10(5e3), np.log10(5e5), 6).round().astype(int).tolist(), "n_train": 1000,
             "lr": 0.1, "rho": 0.05, "batch_size": 32, "steps": 600, "seeds": 5},
    "quick": {"params": [800, 1600], "n_train": 200, "lr": 0.1, "rho": 0.05, "batch_size": 16, "steps": 5,
              "seeds": 2},
}
D, CLASSES = 64, 10


def hidden_for(p: int) -> int:
    """The width h whose 3-layer MLP 64 → h → h → 10 has the parameter count closest to p."""
    h = int(round((-(D + 1 + CLASSES + 1) + np.sqrt((D + CLASSES + 2) ** 2 + 4 * (p - CLASSES))) / 2))
    return min((max(1, h + k) for k in (-1, 0, 1)), key=lambda w: abs(mlp_num_params(D, (w, w), CLASSES) - p))


def digits(data_seed: int, n_train: int):
    """(X, y, X_test, y_test) of the bundled digits, split by a permutation drawn from ``data_seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - the optional extra
        raise ImportError("width_real needs scikit-learn: pip install -e '.[experiments]'") from exc
    bunch = load_digits()
    X, y = bunch.data / 16.0, bunch.target
    perm = np.random.default_rng(data_seed).permutation(len(y))
    tr, te = perm[:n_train], perm[n_train:]
    return X[tr], y[tr], X[te], y[te]


def run(ctx, s) -> Outcome:
    X, y, Xt, yt = digits(ctx.data_seed, s["n_train"])
    hs = [hidden_for(p) for p in s["params"]]
    p = np.array([mlp_num_params(D, (h, h), CLASSES) for h in hs])
    acc = {"sgd": [], "sam": []}
    for h in hs:
        out = sgd_and_sam(ctx, f"h{h}", MLPClassifier(X, y, Xt, yt, (h, h), num_classes=CLASSES,
                                                       seed=ctx.data_seed), s, "test_accuracy")
        for k in acc:
            acc[k].append(out[k])
    sgd, sam = np.array(acc["sgd"]), np.array(acc["sam"])
    gap = sam - sgd
    slope = slopes(np.log10(p), gap)
    verdicts = [positive("the SAM − SGD accuracy gain grows with #params", "slope of gain over log10 p", slope),
                positive("SAM beats SGD at the largest width", f"accuracy gain at p = {p[-1]}", gap[-1])]
    rows = [(int(pi), h, fmt(*mse(a)), fmt(*mse(b)), fmt(*mse(g))) for pi, h, a, b, g in zip(p, hs, sgd, sam, gap)]
    measured = table(("#params p", "hidden h", "test acc SGD", "test acc SAM", "gain SAM − SGD"), rows)
    measured += f"\n\nSlope of the gain over log10 p: {fmt(*mse(slope))} per decade."
    fig, axes = new_figure(2, width=5.0)
    errorbars(axes[0], p, sgd, "SGD")
    errorbars(axes[0], p, sam, "SAM ρ = 0.05")
    label(axes[0], xlabel="#params p", ylabel="test accuracy", title="digits: final test accuracy", xlog=True)
    errorbars(axes[1], p, gap, "SAM − SGD")
    path = finish(fig, axes[1], ctx.figure_path("width_real_gain"), xlabel="#params p", ylabel="accuracy gain",
                  title="digits 3-layer MLP: SAM − SGD accuracy (mean ± SE)", xlog=True, zero=True)
    results = {"params": p.tolist(), "hidden": hs, "test_accuracy_sgd": ms(sgd), "test_accuracy_sam": ms(sam),
               "gain": ms(gap), "slope_per_decade": ms(slope)}
    return Outcome(measured, verdicts, results, [path])
