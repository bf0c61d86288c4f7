"""The Pythons ``_wire/_interp.py`` refuses: too old, or built without subinterpreters.

Each test executes a fresh copy of the module's file (the loaded one stays as it is)
under a ``sys.modules`` that makes this Python look like the one refused.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

import pytest

from aiointerp._wire import _interp

REFUSAL = "aiointerp needs CPython 3.13 or newer built with subinterpreter support"


def _load_copy() -> types.ModuleType:
    """Execute ``_interp.py`` anew as a module of its own (not put in sys.modules)."""
    spec = importlib.util.spec_from_file_location("_interp_copy", _interp.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_copy_loads_on_this_python() -> None:
    copy = _load_copy()
    assert copy.__all__ == _interp.__all__


def test_a_python_older_than_3_13_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class OldSys(types.ModuleType):
        """This process's ``sys``, but 3.12 (what ``import sys`` gives the copy)."""

        version_info = (3, 12, 8, "final", 0)

        def __getattr__(self, name: str) -> Any:
            return getattr(sys, name)

    monkeypatch.setitem(sys.modules, "sys", OldSys("sys"))
    with pytest.raises(ImportError, match=REFUSAL) as excinfo:
        _load_copy()
    version = sys.version.split()[0]
    assert str(excinfo.value).endswith(f"this is {sys.implementation.name} {version}")


def test_a_build_without_subinterpreters_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the modules of either API (3.13's private one, 3.14's public one) are missing
    for name in ("_interpreters", "_interpqueues", "concurrent.interpreters"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=REFUSAL) as excinfo:
        _load_copy()
    assert isinstance(excinfo.value.__cause__, ImportError)  # the missing module's
