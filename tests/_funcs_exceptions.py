"""Worker-side functions of tests/wire/test_exceptions.py: exceptions of every awkward shape.

Imported by worker interpreters: stdlib only.
"""

from __future__ import annotations

import errno
import importlib
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn


class QuotaExceeded(Exception):
    """The most common custom exception: pickle cannot rebuild it (``cls(message)``)."""

    def __init__(self, user: str, used: int) -> None:
        super().__init__(f"{user} used {used}")
        self.user = user
        self.used = used


class Described(Exception):
    """No args at all; ``__str__`` reads the attributes."""

    def __init__(self, *, code: int) -> None:
        super().__init__()
        self.code = code

    def __str__(self) -> str:
        return f"failed with code {self.code}"


class ConfigMissing(FileNotFoundError):
    """An OSError subclass with its own ``__init__``: errno and filename go up."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ENOENT, "no configuration", path)
        self.path = path


class Reducing(Exception):
    """Says itself how to pickle: its ``__reduce__`` is honoured."""

    def __init__(self, left: int, right: int) -> None:
        super().__init__(left + right)
        self.left = left
        self.right = right
        self.rebuilt_by_reduce = False

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_reducing, (self.left, self.right))


def _rebuild_reducing(left: int, right: int) -> Reducing:
    exc = Reducing(left, right)
    exc.rebuilt_by_reduce = True
    return exc


def raise_quota(user: str, used: int) -> NoReturn:
    error = QuotaExceeded(user, used)
    error.add_note("first note")
    error.add_note("second note")
    raise error  # quota-marker


def raise_described(code: int) -> NoReturn:
    raise Described(code=code)


def raise_config_missing(path: str) -> NoReturn:
    raise ConfigMissing(path)


def raise_reducing(left: int, right: int) -> NoReturn:
    raise Reducing(left, right)


def raise_with_cause(path: str) -> NoReturn:
    try:
        try:
            {}["missing"]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "gone", path)  # noqa: B904
    except OSError as error:
        raise QuotaExceeded("carol", 9) from error


def raise_with_context() -> NoReturn:
    try:
        {}["missing"]
    except KeyError:
        raise QuotaExceeded("dave", 1)  # noqa: B904


def raise_from_none() -> NoReturn:
    try:
        {}["missing"]
    except KeyError:
        raise QuotaExceeded("erin", 2) from None


def raise_cycle() -> NoReturn:
    first = QuotaExceeded("a", 1)
    second = ValueError("b")
    first.__cause__ = second
    second.__cause__ = first
    raise first


def raise_long_chain(length: int) -> NoReturn:
    error: Exception = ValueError(0)
    for index in range(1, length):
        link = ValueError(index)
        link.__cause__ = error
        error = link
    raise error


def raise_after_keyboard_interrupt() -> NoReturn:
    try:
        raise KeyboardInterrupt("inside")
    except KeyboardInterrupt:
        raise QuotaExceeded("frank", 3)  # noqa: B904


def raise_with_lock_attribute() -> NoReturn:
    error = QuotaExceeded("gina", 4)
    error.lock = threading.Lock()  # type: ignore[attr-defined]
    raise error


def raise_with_lock_argument() -> NoReturn:
    raise ValueError("bad", threading.Lock())


def raise_group() -> NoReturn:
    raise ExceptionGroup(
        "several", [QuotaExceeded("hana", 5), ValueError("plain"), Described(code=6)]
    )


def raise_stop_iteration(value: object) -> NoReturn:
    raise StopIteration(value)


def raise_runtime_error_from_stop_iteration() -> NoReturn:
    def gen() -> Iterator[int]:
        raise StopIteration("inner")
        yield 1  # pragma: no cover

    next(gen())  # PEP 479: RuntimeError from StopIteration, inside the interpreter
    raise AssertionError("unreachable")  # pragma: no cover


def stop_async_iteration_at(item: int, stop_at: int) -> int:
    if item == stop_at:
        raise StopAsyncIteration("from the function")
    return item * 10


def quota_at(item: int, stop_at: int) -> int:
    if item == stop_at:
        raise QuotaExceeded("ivan", item)
    return item


# -- a module that only the worker can import (its directory is added in the worker)


def _import_worker_only(directory: str, module: str) -> Any:
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return importlib.import_module(module)


def raise_worker_only(directory: str, module: str) -> NoReturn:
    kind = _import_worker_only(directory, module).WorkerOnlyError
    error = kind("only here")
    error.add_note("a note of its own")
    raise error


def raise_with_worker_only_attribute(directory: str, module: str) -> NoReturn:
    thing = _import_worker_only(directory, module).Thing
    error = QuotaExceeded("judy", 7)
    error.thing = thing()  # type: ignore[attr-defined]
    raise error


def return_worker_only(directory: str, module: str) -> object:
    return _import_worker_only(directory, module).Thing()


WORKER_ONLY_SOURCE = """
class WorkerOnlyError(Exception):
    pass


class Thing:
    pass
"""


# -- faults of the exception's own making -------------------------------------------


class RefusingKeys(dict[str, Any]):
    """An exception's ``__dict__`` whose ``keys()`` raises its first *fails* times:
    what the built-in ``__reduce__`` returns as state cannot be copied."""

    def __init__(self, fails: int) -> None:
        super().__init__()
        self.fails = fails

    def __iter__(self) -> Iterator[str]:  # so dict() asks keys()
        return super().__iter__()

    def keys(self) -> Any:
        if self.fails:
            self.fails -= 1
            raise RuntimeError("keys() refused")
        return super().keys()


def raise_with_refusing_dict(fails: int, refusal: bool = False) -> NoReturn:
    """QuotaExceeded (or, with *refusal*, a refusal of subinterpreters) whose
    ``__dict__`` refuses to be copied *fails* times."""
    error: Exception = (
        ImportError(
            "module _aiointerp_fake does not support loading in subinterpreters"
        )
        if refusal
        else QuotaExceeded("kim", 2)
    )
    state = RefusingKeys(fails)
    state.update(error.__dict__, detail="an attribute")  # state to copy
    error.__dict__ = state
    raise error


class BecomesKeyboardInterrupt(Exception):
    """An Exception in the worker whose own ``__reduce__`` rebuilds a BaseException."""

    def __reduce__(self) -> Any:
        return (KeyboardInterrupt, ("from a reduce",))


def raise_becomes_keyboard_interrupt() -> NoReturn:
    raise BecomesKeyboardInterrupt("sneaky")


class ChainRefused(Exception):
    """Its ``__cause__`` is a read-only property: nobody can set its chain."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.real_cause = cause

    @property
    def __cause__(self) -> BaseException:  # type: ignore[override]
        return self.real_cause


def raise_chain_refused() -> NoReturn:
    raise ChainRefused("read-only chain", ValueError("the real cause"))
