"""Synthetic overparameterized problems (THEORY.md §3), each a `Problem` with a knob for p."""
from .base import Problem, as_jax, stack_trees, take
from .diagonal_net import DiagonalLinearNet, diagonal_linear_net
from .linear_regression import LinearRegression, linear_regression
from .linearized import Linearized
from .masks import PRUNERS, apply_mask, make_mask
from .matrix_factorization import MatrixFactorization, matrix_factorization
from .mlp import MLPClassifier, mlp_num_params
from .quadratic import QuadraticSum
from .relu_1d import ReLU1D, relu_1d
from .tanh_net import TanhNet
from .two_layer import ACTIVATIONS, TwoLayerNet, two_layer_net

__all__ = ["Problem", "LinearRegression", "linear_regression", "TwoLayerNet", "two_layer_net", "DiagonalLinearNet",
           "diagonal_linear_net", "MatrixFactorization", "matrix_factorization", "ReLU1D", "relu_1d", "as_jax",
           "stack_trees", "take", "TanhNet", "Linearized", "MLPClassifier", "mlp_num_params", "QuadraticSum",
           "apply_mask", "make_mask", "PRUNERS", "ACTIVATIONS"]
