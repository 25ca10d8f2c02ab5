import pytest

from sam_theory.precision import float64


@pytest.fixture
def x64():
    """Run the test body in float64 (THEORY.md: checks run in float64), scoped to the test."""
    with float64():
        yield
