"""Two-layer networks, THEORY.md §3.2: f(x; W, v) = s_out Σ_j v_j σ(s_in w_jᵀx), width m, p = m(d + 1).

Parameterizations (scale factors and initial variances):
  standard:   s_in = 1,     s_out = 1,     W_jk ~ N(0, 1/d), v_j ~ N(0, 1/m)   (LeCun initialization);
  ntk:        s_in = 1/√d,  s_out = 1/√m,  W_jk ~ N(0, 1),   v_j ~ N(0, 1);
  mean_field: s_in = 1/√d,  s_out = 1/m,   W_jk ~ N(0, 1),   v_j ~ N(0, 1).
Data: x ~ N(0, I_d). Teachers: "two_layer" is a fixed random network of width ``teacher_width`` in the same
parameterization and activation; "linear" is y = θᵀx/√d with θ ~ N(0, I_d). Square loss ½(f − y)²; logistic loss
log(1 + exp(−y f)) on labels y = sign(teacher) ∈ {−1, +1}. Label noise: Gaussian σ added to regression targets, or a
flipped fraction of classification labels; test labels stay clean.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..compiler import jit_fast_compile
from ..precision import float64
from ..validation import check_choice, check_finite_array, check_int, check_nonnegative
from .base import Problem
from .draw import normal
from .masks import apply_mask

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "softplus": jax.nn.softplus}
PARAMETERIZATIONS = ("standard", "ntk", "mean_field")
TEACHERS = ("two_layer", "linear")
LOSSES = ("square", "logistic")


def scales(parameterization: str, d: int, width: int) -> tuple[float, float]:
    """(s_in, s_out) of the parameterization (module docstring)."""
    if parameterization == "standard":
        return 1.0, 1.0
    return 1.0 / np.sqrt(d), (1.0 / np.sqrt(width) if parameterization == "ntk" else 1.0 / width)


def init_two_layer(key, d: int, width: int, parameterization: str) -> dict:
    kw, kv = jax.random.split(key)
    W = normal(kw, (width, d))
    v = normal(kv, (width,))
    if parameterization == "standard":
        W, v = W / np.sqrt(d), v / np.sqrt(width)
    return {"W": W, "v": v}


def two_layer_forward(params, x, *, activation: str, parameterization: str):
    """f(x) = s_out Σ_j v_j σ(s_in w_jᵀx) for one input x of shape (d,)."""
    W, v = params["W"], params["v"]
    s_in, s_out = scales(parameterization, W.shape[1], W.shape[0])
    return s_out * jnp.dot(v, ACTIVATIONS[activation](s_in * (W @ x)))


_init_two_layer = jit_fast_compile(init_two_layer, static_argnums=(1, 2, 3))


@jit_fast_compile(static_argnums=(2, 3))
def _forward_batch(params, X, activation: str, parameterization: str):
    return jax.vmap(lambda x: two_layer_forward(params, x, activation=activation, parameterization=parameterization))(X)


class TwoLayerNet(Problem):
    """Teacher–student two-layer network; the width m is the overparameterization knob (p = m(d + 1)).

    Example:
      >>> from sam_theory.problems import two_layer_net
      >>> isinstance(two_layer_net(n=8, d=3, width=5), TwoLayerNet)
      True
    """

    name = "two_layer_net"

    def __init__(self, n, d, width, *, activation="relu", teacher="two_layer", teacher_width=4, loss="square",
                 label_noise=0.0, parameterization="standard", n_test=1000, seed=0, sparsity=0.0,
                 pruner="random", weight_decay=0.0, perturb_weight_decay=False):
        self.n_train = check_int("n", n)
        self.d = check_int("d", d)
        self.width = check_int("width", width)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.teacher = check_choice("teacher", teacher, TEACHERS)
        self.teacher_width = check_int("teacher_width", teacher_width)
        self.loss_type = check_choice("loss", loss, LOSSES)
        self.parameterization = check_choice("parameterization", parameterization, PARAMETERIZATIONS)
        self.label_noise = float(check_nonnegative("label_noise", label_noise))
        if self.loss_type == "logistic" and self.label_noise >= 1:
            raise ValueError(f"label_noise is a flipped fraction for loss='logistic' and must be < 1, got {label_noise}")
        self.n_test = check_int("n_test", n_test, minimum=0)
        self.seed = seed
        self.is_classification = self.loss_type == "logistic"
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n + n_test, d))
        with float64():
            if teacher == "two_layer":
                self.teacher_params = jax.tree.map(np.asarray, _init_two_layer(
                    jax.random.key(seed + 104729), d, teacher_width, parameterization))
                out = np.asarray(_forward_batch(self.teacher_params, X, activation, parameterization))
            else:
                self.teacher_params = {"theta": rng.standard_normal(d)}
                out = X @ self.teacher_params["theta"] / np.sqrt(d)
        if self.is_classification:
            clean = np.where(out >= 0, 1.0, -1.0)
            y = clean[:n].copy()
            flip = rng.permutation(n)[: int(round(self.label_noise * n))]
            y[flip] *= -1.0
            self.flipped = np.sort(flip)
        else:
            clean = out
            y = out[:n] + self.label_noise * rng.standard_normal(n)
        check_finite_array("y", y)
        self.data = (X[:n], y)
        self.test_data = (X[n:], clean[n:]) if n_test else None
        self._configure(seed=seed, weight_decay=weight_decay, perturb_weight_decay=perturb_weight_decay,
                        sparsity=sparsity, pruner=pruner)

    def _init(self, key):
        return init_two_layer(key, self.d, self.width, self.parameterization)

    def forward(self, params, x):
        """Network output f(x) at params (masked)."""
        return two_layer_forward(apply_mask(params, self.mask), x, activation=self.activation,
                                 parameterization=self.parameterization)

    def prediction(self, params, example):
        """ŷ = f(x; params ⊙ mask) (square loss: f_i = ½(ŷ − y_i)²; logistic: the logit)."""
        return self.forward(params, example[0])

    def _loss(self, params, example):
        x, y = example
        f = two_layer_forward(params, x, activation=self.activation, parameterization=self.parameterization)
        return self._pointwise_loss(f, y)

    def structured_losses(self, params, examples, ops):
        """Batched f_i: z = dense W on s_in·x, f = dense v on s_out·σ(z) (layer form for structured m-SAM)."""
        X, y = examples
        s_in, s_out = scales(self.parameterization, self.d, self.width)
        f = ops.dense("v", s_out * ACTIVATIONS[self.activation](ops.dense("W", s_in * X)))
        return self._pointwise_loss(f, y)

    def output_loss(self, f, example):
        """The loss of the output f at the example's label: ½(f − y)² (square) or log(1 + e^{−y f}) (logistic)
        (used by `problems.Linearized`)."""
        return self._pointwise_loss(f, example[1])

    def _pointwise_loss(self, f, y):
        if self.loss_type == "square":
            return 0.5 * (f - y) ** 2
        return jax.nn.softplus(-y * f)

    def teacher_as_student(self) -> dict:
        """The teacher's parameters as student parameters (needs teacher='two_layer', width == teacher_width):
        an interpolating point by construction when there is no label noise."""
        if self.teacher != "two_layer" or self.width != self.teacher_width:
            raise ValueError("teacher_as_student needs teacher='two_layer' and width == teacher_width")
        return jax.tree.map(jnp.asarray, self.teacher_params)

    def test_accuracy(self, params):
        if not self.is_classification:
            return super().test_accuracy(params)
        X, y = self.test_data
        return jnp.mean((self.predict_labels(params, X) == y).astype(jnp.result_type(float)))

    def predict_labels(self, params, X):
        """Predicted labels where(f(x) ≥ 0, +1, −1), the same rule that labels the data."""
        f = jax.vmap(lambda x: self.forward(params, x))(jnp.asarray(X, dtype=jnp.result_type(float)))
        return jnp.where(f >= 0, 1.0, -1.0)

    def interpolates(self, params, tol: float = 1e-10) -> bool:
        """Square loss: every f_i ≤ tol. Logistic loss: every training label predicted (zero training error)."""
        if not self.is_classification:
            return super().interpolates(params, tol)
        X, y = self.data
        return bool(jnp.all(self.predict_labels(params, X) == y))

    def describe(self) -> dict:
        return {**super().describe(), "d": self.d, "width": self.width, "activation": self.activation,
                "teacher": self.teacher, "teacher_width": self.teacher_width, "loss": self.loss_type,
                "label_noise": self.label_noise, "parameterization": self.parameterization, "seed": self.seed,
                "sparsity": self.sparsity, "pruner": self.pruner, "weight_decay": self.weight_decay}


def two_layer_net(n, d, width, *, activation="relu", teacher="two_layer", teacher_width=4, loss="square",
                  label_noise=0.0, parameterization="standard", n_test=1000, seed=0, sparsity=0.0,
                  pruner="random", weight_decay=0.0, perturb_weight_decay=False) -> TwoLayerNet:
    """A teacher–student two-layer network problem (THEORY.md §3.2); see `TwoLayerNet` for every convention.

    Args:
      n, d, width: examples, input dimension, hidden width m (the knob; p = m(d + 1)).
      activation: relu, tanh, gelu or softplus.  teacher: "two_layer" or "linear".
      loss: "square" (regression) or "logistic" (binary classification; reports `test_accuracy`).
      label_noise: Gaussian σ (square) or flipped fraction (logistic); test labels stay clean.
      parameterization: "standard", "ntk" or "mean_field".  n_test: clean test-set size.  seed: data seed.
      sparsity, pruner: mask at init (random, magnitude or snip), applied in the loss (THEORY.md §10.3).
      weight_decay, perturb_weight_decay: explicit (λ/2)‖x‖² term and whether it enters the SAM perturbation.

    Example:
      >>> import jax
      >>> prob = two_layer_net(n=8, d=3, width=5, seed=0)
      >>> {k: v.shape for k, v in prob.init(jax.random.key(0)).items()}
      {'W': (5, 3), 'v': (5,)}
    """
    return TwoLayerNet(n, d, width, activation=activation, teacher=teacher, teacher_width=teacher_width, loss=loss,
                       label_noise=label_noise, parameterization=parameterization, n_test=n_test, seed=seed,
                       sparsity=sparsity, pruner=pruner, weight_decay=weight_decay,
                       perturb_weight_decay=perturb_weight_decay)
