"""The examples in the package's docstrings are run, so they cannot drift from the code."""

import doctest
import importlib
import pkgutil

import pytest

import pipeline

MODULES = sorted(module.name for module in pkgutil.walk_packages(pipeline.__path__, "pipeline."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    failures, _tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
