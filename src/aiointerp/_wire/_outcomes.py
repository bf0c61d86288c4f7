"""What the caller gets for an outcome: the call's result, or its exception rebuilt."""

from __future__ import annotations

import pickle

from . import _rebuild
from ._encoding import RAN_IN, describe
from ._errors import NotShareableError, RemoteError, RemoteTraceback
from ._protocol import (
    INTERRUPTED,
    OK_PICKLED,
    OK_SHARED,
    RAISED,
    RAISED_RAW,
    REFUSED,
    UNSENDABLE,
)
from ._refusal import find, refusal_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._encoding import Outcome

__all__ = ["decode_outcome"]


def decode_outcome(outcome: Outcome, func: object, kind: str = "auto") -> Any:
    """Return the call's result or raise its exception, as the caller should see it.

    *kind* is the kind of worker that ran the call (named in messages).
    """
    _, status, a, b, _ = outcome
    if status == OK_SHARED:
        return a
    if status == OK_PICKLED:
        try:
            return pickle.loads(a)
        except Exception as error:
            raise _rebuild.unloadable_result(describe(func), error, kind) from error
    if status == RAISED:  # a = _exceptions.encode(exc): rebuilt as itself
        exc = _rebuild.rebuild(a, b)
        _add_subinterpreter_hint(exc)
        raise exc
    if status == RAISED_RAW:
        type_name, message = a
        raise RemoteError(type_name, message, b) from RemoteTraceback(b)
    if status == INTERRUPTED:  # raised by the code itself, not by a cancellation
        raise RemoteError(
            "aiointerp.Interrupted", f"raised inside {RAN_IN[kind]}", b
        ) from RemoteTraceback(b)
    if status == REFUSED:  # a module refused subinterpreters
        raise refusal_error(a, b, func, False, "interpreter")
    if status == UNSENDABLE:
        type_name, why = a
        raise NotShareableError(
            f"the result of {describe(func)} ({type_name}) cannot be sent back "
            f"from {RAN_IN[kind]}: {why}; return picklable or shareable values"
        )
    raise AssertionError(f"unexpected outcome status {status}")  # a defect of ours


def _add_subinterpreter_hint(exc: BaseException) -> None:
    """A refusal that reached the caller as a plain error (raised in a map batch)."""
    if isinstance(exc, ImportError) and "subinterpreter" in str(exc):
        found = find(exc)
        module = found[0] if found else exc.name or "an extension module"
        exc.add_note(
            f"aiointerp: {module} does not support subinterpreters. Run the code "
            "that imports it in a process: InterpreterPool(kind='process'), or "
            "kind='auto' with the import at the top of the function's module (auto "
            "sees it when it loads the function, before the code runs)."
        )
