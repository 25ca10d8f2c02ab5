"""A multi-layer perceptron classifier on a given data set (THEORY.md §10.1, the real-data panel).

f(x; θ) = W_L σ(… σ(W_1 x + b_1) …) + b_L ∈ R^C (logits), σ = relu, LeCun-normal weights W_l ~ N(0, 1/fan_in)
(drawn by `problems.draw.normal`: the same point in float32 and float64), zero biases; per-example loss softmax cross-entropy f_i = logsumexp(f(x_i)) − f(x_i)_{y_i}; test accuracy is the
fraction of test examples whose arg-max logit is the label. The data arrive as arrays (the problem does not load
anything); the number of parameters is p = Σ_l (fan_in_l + 1)·fan_out_l.
"""
from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from ..validation import check_finite_array, check_int
from .base import Problem
from .draw import normal
from .masks import apply_mask


def mlp_num_params(d: int, hidden, num_classes: int) -> int:
    """p = Σ_l (fan_in_l + 1)·fan_out_l for layer sizes d → hidden… → num_classes.

    Example:
      >>> mlp_num_params(784, (100,), 10)                      # 785·100 + 101·10
      79510
    """
    sizes = [d, *hidden, num_classes]
    return int(sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:])))


class MLPClassifier(Problem):
    """Softmax cross-entropy MLP on ``(X, y)`` with a held-out ``(X_test, y_test)`` (module docstring).

    Example (zero output weights give zero logits: the loss is ln C for C classes):
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> X = np.random.default_rng(0).standard_normal((6, 3))
      >>> prob = MLPClassifier(X, [0, 1, 2, 0, 1, 2], X, [0, 1, 2, 0, 1, 2], hidden=(4,))
      >>> prob.num_params == mlp_num_params(3, (4,), 3), prob.num_classes
      (True, 3)
      >>> x = prob.init(jax.random.key(0))
      >>> x[-1]["W"] = jnp.zeros_like(x[-1]["W"])
      >>> round(float(prob.loss(x)), 6), round(float(np.log(3)), 6)
      (1.098612, 1.098612)
    """

    name = "mlp_classifier"

    def __init__(self, X, y, X_test, y_test, hidden, *, num_classes=None, seed=0, sparsity=0.0, pruner="random",
                 weight_decay=0.0, perturb_weight_decay=False):
        X, X_test = np.asarray(X, dtype=np.float64), np.asarray(X_test, dtype=np.float64)
        y, y_test = np.asarray(y), np.asarray(y_test)
        for name, arr in (("X", X), ("X_test", X_test)):
            check_finite_array(name, arr)
            if arr.ndim != 2:
                raise ValueError(f"{name} must be a 2-D array (examples, features), got shape {arr.shape}")
        if X_test.shape[1] != X.shape[1]:
            raise ValueError(f"X_test has {X_test.shape[1]} features, X has {X.shape[1]}")
        if y.shape != (X.shape[0],) or y_test.shape != (X_test.shape[0],):
            raise ValueError(f"y and y_test must be 1-D label vectors matching X and X_test, got {y.shape}, "
                             f"{y_test.shape}")
        self.hidden = tuple(check_int("hidden", h) for h in hidden)
        if not self.hidden:
            raise ValueError("hidden must list at least one hidden width")
        self.num_classes = check_int("num_classes", int(max(y.max(), y_test.max())) + 1 if num_classes is None
                                     else num_classes, minimum=2)
        if y.min() < 0 or y.max() >= self.num_classes or y_test.min() < 0 or y_test.max() >= self.num_classes:
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1}")
        self.d, self.seed = X.shape[1], seed
        self.is_classification = True
        self.data = (X, y.astype(np.int32))
        self.test_data = (X_test, y_test.astype(np.int32))
        digest = hashlib.sha1()
        for arr in (X, y, X_test, y_test):
            digest.update(np.ascontiguousarray(arr).tobytes())
        self.data_hash = digest.hexdigest()[:16]
        self._configure(seed=seed, weight_decay=weight_decay, perturb_weight_decay=perturb_weight_decay,
                        sparsity=sparsity, pruner=pruner)

    def _init(self, key):
        sizes = [self.d, *self.hidden, self.num_classes]
        keys = jax.random.split(key, len(sizes) - 1)
        return [{"W": normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros((b,))}
                for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    @staticmethod
    def _logits(params, x):
        h = x
        for layer in params[:-1]:
            h = jax.nn.relu(h @ layer["W"] + layer["b"])
        return h @ params[-1]["W"] + params[-1]["b"]

    def output_loss(self, logits, example):
        """Cross-entropy of the logits against the example's label."""
        return jax.nn.logsumexp(logits) - logits[example[1]]

    def prediction(self, params, example):
        """The logits f(x; params ⊙ mask)."""
        return self._logits(apply_mask(params, self.mask), example[0])

    def _loss(self, params, example):
        return self.output_loss(self._logits(params, example[0]), example)

    def test_accuracy(self, params):
        X, y = (jnp.asarray(a) for a in self.test_data)
        logits = jax.vmap(lambda x: self._logits(apply_mask(params, self.mask), x))(X.astype(jnp.result_type(float)))
        return jnp.mean((jnp.argmax(logits, axis=-1) == y).astype(jnp.result_type(float)))

    def describe(self) -> dict:
        return {**super().describe(), "d": self.d, "hidden": list(self.hidden), "num_classes": self.num_classes,
                "data_hash": self.data_hash, "seed": self.seed, "sparsity": self.sparsity,
                "weight_decay": self.weight_decay}
