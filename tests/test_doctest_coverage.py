"""Executable docs (issue 17): every public function and class of the user-facing modules carries a runnable
``>>>`` example in its own docstring. `make test` runs them (``pytest --doctest-modules sam_theory``); this test
checks that none is missing. Public = the module's ``__all__``; constants (dicts, numbers) are not counted."""
import doctest
import importlib
import inspect

import pytest

MODULES = ["problems", "optim", "train", "sweep", "curvature", "stability", "convergence"]
_PARSER = doctest.DocTestParser()


def _documented(obj) -> bool:
    """Whether the object's own docstring holds at least one doctest example (a class: not an inherited one)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return bool(doc) and bool(_PARSER.get_examples(doc))


def _public(module):
    names = getattr(module, "__all__", None)
    assert names is not None, f"{module.__name__} has no __all__"
    return [(n, getattr(module, n)) for n in names
            if callable(getattr(module, n)) and not inspect.ismodule(getattr(module, n))]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_has_an_example(name):
    module = importlib.import_module(f"sam_theory.{name}")
    public = _public(module)
    assert public, f"sam_theory.{name} exports no functions or classes"
    missing = [n for n, obj in public if not _documented(obj)]
    assert not missing, f"sam_theory.{name}: no >>> example in the docstring of {missing}"


def test_the_coverage_check_can_fail():
    """An undocumented function, an example-free docstring and an inherited class docstring do not count."""
    def bare():
        pass

    def prose():
        """Text with a >>> but no example line."""

    def example():
        """Example:
          >>> 1 + 1
          2
        """

    class Parent:
        """>>> 1
        1
        """

    class Child(Parent):
        pass

    assert [_documented(f) for f in (bare, prose, example, Parent, Child)] == [False, False, True, True, False]
