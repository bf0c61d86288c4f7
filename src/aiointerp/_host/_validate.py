"""Checks of what a call is given, before any worker is taken (host side)."""

from __future__ import annotations

import inspect
import types
from typing import Final

from .._wire import _encoding

__all__ = ["reject_async"]

_ASYNC_FLAGS: Final = (
    inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
)


def reject_async(func: object) -> None:
    """Raise :class:`TypeError` for what run_sync cannot run: async callables."""
    kind = type(func)
    if kind is types.BuiltinFunctionType:
        return
    if kind is types.FunctionType:  # fast path for the common case
        code = func.__code__  # type: ignore[attr-defined]
        if not code.co_flags & _ASYNC_FLAGS and not hasattr(
            func, "_is_coroutine_marker"
        ):
            return
    call = getattr(func, "__call__", None)  # noqa: B004 - async __call__ of an object
    for candidate in (func, call):
        if inspect.iscoroutinefunction(candidate) or inspect.isasyncgenfunction(
            candidate
        ):
            raise TypeError(
                f"{_encoding.describe(func)} is an async function: "
                "run_sync runs synchronous functions in a worker; await "
                "coroutine functions directly instead"
            )
    if not callable(func):
        raise TypeError(f"{func!r} is not callable")
