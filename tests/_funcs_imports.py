"""Functions whose own code imports what interpreters refuse (numpy, Pillow, pydantic).

This module imports only the standard library at its top, so it loads in an
interpreter: only the imports in the functions' code (their bodies, nested functions,
class bodies, helpers of this module) need a process. A ``kind="auto"`` pool reads
them before a function's first call. Each function first appends its pid to
*marker*, so that a test can tell where it ran and that it ran once.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

import aiointerp


def record(marker: str) -> int:
    """Append this worker's pid to *marker*; return it."""
    with open(marker, "a") as file:
        file.write(f"{os.getpid()}\n")
    return os.getpid()


def numpy_in_body(marker: str, n: int) -> tuple[int, int]:
    pid = record(marker)
    import numpy

    return pid, int(numpy.arange(n).sum())


def pil_in_body(marker: str) -> tuple[int, tuple[int, int]]:
    pid = record(marker)
    from PIL import Image

    return pid, Image.new("L", (4, 3)).size


def pydantic_in_body(marker: str) -> tuple[int, str]:
    pid = record(marker)
    from pydantic import BaseModel

    class Item(BaseModel):
        name: str

    return pid, Item(name="a").name


def numpy_in_nested_function(marker: str, n: int) -> tuple[int, int]:
    pid = record(marker)

    def load():  # type: ignore[no-untyped-def]
        import numpy

        return numpy

    return pid, sum(int(load().arange(n).sum()) for _ in range(1))


def pil_in_class_body(marker: str) -> tuple[int, tuple[int, int]]:
    pid = record(marker)

    class Loader:
        from PIL import Image

    return pid, Loader.Image.new("L", (2, 5)).size


def _numpy_total(n: int) -> int:
    """A helper of this module that imports numpy."""
    import numpy

    return int(numpy.arange(n).sum())


def numpy_in_helper(marker: str, n: int) -> tuple[int, int]:
    pid = record(marker)
    return pid, _numpy_total(n)


@aiointerp.offload
def offloaded_numpy(marker: str, n: int) -> tuple[int, int]:
    """``@offload``: pools get a reference to this original function."""
    pid = record(marker)
    import numpy

    return pid, int(numpy.arange(n).sum())


class Summer:
    """A callable object, and a method, whose code imports numpy."""

    def __call__(self, marker: str, n: int) -> tuple[int, int]:
        pid = record(marker)
        import numpy

        return pid, int(numpy.arange(n).sum())

    def total(self, marker: str, n: int) -> tuple[int, int]:
        pid = record(marker)
        from numpy import arange

        return pid, int(arange(n).sum())


def make_local() -> Callable[[str, int], tuple[int, int]]:
    """A local function (pickled by value, with cloudpickle) that imports numpy."""

    def local(marker: str, n: int) -> tuple[int, int]:
        pid = record(marker)
        import numpy

        return pid, int(numpy.arange(n).sum())

    return local


def stdlib_and_safe(marker: str) -> tuple[int, str]:
    """Imports only what loads in interpreters: the stdlib, and a module of tests."""
    pid = record(marker)
    import decimal
    import json

    import _funcs_core

    return pid, json.dumps([str(decimal.Decimal(1)), _funcs_core.identity("x")])


def missing_in_body(marker: str) -> int:
    pid = record(marker)
    import aiointerp_tests_no_such_module  # type: ignore[import-not-found]  # noqa: F401

    return pid


def import_by_name(marker: str, name: str) -> tuple[int, str]:
    """An import whose name is computed: no reading of the code can see it."""
    pid = record(marker)
    return pid, importlib.import_module(name).__name__


def import_slow_module(marker: str) -> tuple[int, str]:
    """Imports :mod:`_imports_slow`, whose first import waits for the test."""
    pid = record(marker)
    import _imports_slow

    return pid, _imports_slow.__name__
