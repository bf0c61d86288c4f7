"""Module-level functions sent to worker interpreters by the core engine tests.

Stdlib only (plus :mod:`aiointerp._wire._interp`, which workers import anyway): every
function here is pickled by reference and imported again inside a worker.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import NoReturn

from aiointerp._wire import _interp


def identity[T](value: T) -> T:
    return value


def echo_args(*args: object) -> tuple[object, ...]:
    return args


def interp_id() -> int:
    """The id of the interpreter this runs in."""
    return _interp.current_id()


def with_keywords(a: int, b: int = 2, *, c: int = 3, d: int = 4) -> tuple[int, ...]:
    return (a, b, c, d)


@dataclass
class Record:
    name: str
    values: list[int]
    tags: frozenset[str]


class Scaler:
    """A picklable object whose bound method is sent to workers."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def scale(self, value: int) -> int:
        return value * self.factor

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scaler) and other.factor == self.factor

    def __hash__(self) -> int:
        return hash(self.factor)


# -- exceptions ----------------------------------------------------------------------


class CustomError(Exception):
    """A user exception type with extra state, picklable."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def fail_with_value_error(message: str) -> NoReturn:
    raise ValueError(message, 42)  # the failing line the remote traceback shows


def fail_with_custom_error(code: int) -> NoReturn:
    raise CustomError(code, "custom detail")


class UnpicklableError(Exception):
    """Pickles, but cannot be unpickled: ``__init__`` wants two arguments."""

    def __init__(self, left: str, right: str) -> None:
        super().__init__(f"{left}-{right}")


def fail_unpicklable(left: str, right: str) -> NoReturn:
    raise UnpicklableError(left, right)  # unpicklable-marker


def exit_with(code: int) -> NoReturn:
    sys.exit(code)  # exit-marker


def interrupt_keyboard() -> NoReturn:
    raise KeyboardInterrupt("pressed inside")  # keyboard-marker


def recurse_forever(depth: int) -> int:
    return recurse_forever(depth + 1) + 1


def fail_subinterpreter_import(name: str) -> NoReturn:
    raise ImportError(
        f"module {name} does not support loading in subinterpreters", name=name
    )


def import_module(name: str) -> str:
    return importlib.import_module(name).__name__


# -- results that cannot go back -------------------------------------------------------


def make_lock() -> threading.Lock:
    return threading.Lock()


# -- blocking, controlled by the test ------------------------------------------------


def hold(tag: int, started_w: int, release_r: int) -> tuple[int, int]:
    """Tell the test it started (its tag on a pipe), then block until released.

    Returns ``(tag, id of the interpreter it ran in)``.
    """
    os.write(started_w, bytes([tag]))
    if os.read(release_r, 1) != b"x":
        raise RuntimeError("release pipe closed")
    return tag, _interp.current_id()


# -- memoryviews ---------------------------------------------------------------------


def poke(view: memoryview, marker: int) -> tuple[int, int]:
    """Write *marker* at both ends of *view*; return what was there before."""
    before = (view[0], view[-1])
    view[0] = marker
    view[-1] = marker
    return before


# -- async callables, rejected ------------------------------------------------------


async def coroutine_function(value: int) -> int:
    return value


async def async_generator_function(value: int) -> AsyncIterator[int]:
    yield value


class AsyncCallable:
    async def __call__(self, value: int) -> int:
        return value
