"""Synthetic overparameterized problems (THEORY.md §3), each a `Problem` with a knob for p."""
from .base import Problem, as_jax, take
from .linear_regression import LinearRegression, linear_regression

__all__ = ["Problem", "LinearRegression", "linear_regression", "as_jax", "take"]
