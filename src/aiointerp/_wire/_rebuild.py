"""Exceptions encoded by a worker (:mod:`aiointerp._wire._exceptions`), rebuilt in the
caller as themselves.

The caller finds the class by name and creates the object without running the user's
``__new__`` or ``__init__``: ``base.__new__(cls, *args)`` and
``base.__init__(exc, *args)`` of its nearest built-in base (which set the C-level
fields from args: ``OSError.errno``, ``StopIteration.value``...), then sets the
attributes as unpickling sets state. Only when the class cannot be found there (or
the object cannot be created at all) does the exception become a RemoteError, with
the reason in a note.
"""

from __future__ import annotations

import pickle
import sys

from ._encoding import RAN_IN
from ._errors import NotShareableError, RemoteError, RemoteTraceback
from ._exceptions import NO_LINK, NOTE, RAW, builtin_base, why

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Any

    from ._exceptions import Encoded, Record

__all__ = ["rebuild", "unloadable_result"]


def rebuild(encoded: Encoded, text: str) -> BaseException:
    """The exception described by :func:`encode`, with its chain, ready to raise.

    The traceback text from inside the interpreter is attached as a
    :class:`~aiointerp.RemoteTraceback`: as the ``__cause__`` of the exception itself
    when it had no cause in the worker (its ``__context__`` is kept, hidden as by
    ``raise ... from``), else at the end of its cause chain, so that ``exc.__cause__``
    is the rebuilt cause.
    """
    try:
        return _rebuild(encoded, text)
    except Exception as error:  # a defect of ours: say so
        name, message = encoded[0][1], encoded[0][2]
        exc = RemoteError(name, message, text)
        exc.add_note(f"{NOTE}{name} could not be rebuilt here ({why(error)})")
        exc.__cause__ = RemoteTraceback(text)
        return exc


def _rebuild(encoded: Encoded, text: str) -> BaseException:
    built: dict[int, BaseException] = {}

    def get(index: int) -> BaseException:
        exc = built.get(index)
        if exc is None:  # members first: a group is created with them
            record = encoded[index]
            members = [get(member) for member in record[7]]
            exc = built[index] = _create(record, members, text)
        return exc

    for index in range(len(encoded)):
        get(index)
    if not isinstance(built[0], Exception):  # its own __reduce__ made a BaseException
        built[0] = _remote(encoded[0], text, "it is not an Exception in this process")
    for index, record in enumerate(encoded):
        exc = built[index]
        cause, context, suppress = record[8], record[9], record[10]
        try:
            if context != NO_LINK:
                exc.__context__ = built[context]
            if cause != NO_LINK:
                exc.__cause__ = built[cause]
            exc.__suppress_context__ = suppress
        except Exception:  # a class refusing its chain (a read-only __cause__)
            pass
    top = built[0]
    _attach(top, RemoteTraceback(text))
    return top


def _attach(top: BaseException, traceback: RemoteTraceback) -> None:
    if top.__cause__ is None:
        top.__cause__ = traceback  # sets __suppress_context__, as `raise ... from`
        return
    link, seen = top.__cause__, {id(top)}
    while True:  # to the end of the chain as displayed; a cycle is cut there
        seen.add(id(link))
        follow = link.__cause__
        if follow is None and not link.__suppress_context__:
            follow = link.__context__
        if follow is None or id(follow) in seen:
            break
        link = follow
    link.__cause__ = traceback


def _load(blob: bytes) -> Any:
    if b"__mp_main__" in blob and "__mp_main__" not in sys.modules:
        main = sys.modules.get("__main__")  # workers name the host's __main__ so
        if main is not None:
            sys.modules["__mp_main__"] = main
    return pickle.loads(blob)


def _remote(record: Record, text: str, why: str) -> RemoteError:
    error = RemoteError(record[1], record[2], text)
    for key, blob in record[6]:
        if key == "__notes__":  # the exception's own notes, when they load
            try:
                notes = _load(blob)
                for note in notes:
                    error.add_note(str(note))
            except Exception:
                pass
    for note in record[11]:
        error.add_note(note)
    error.add_note(f"{NOTE}{record[1]} is raised as RemoteError: {why}")
    return error


def _create(record: Record, members: list[BaseException], text: str) -> BaseException:
    kind, _, _, class_blob, custom, arg_blobs, state_blobs, *_ = record
    if kind == RAW:
        return _remote(record, text, "it is not an Exception that may reach the caller")
    if not class_blob:
        return _remote(record, text, "its class cannot be pickled in the worker")
    try:
        cls = _load(class_blob)
    except Exception as error:
        return _remote(
            record, text, f"its class cannot be found in this process ({why(error)})"
        )
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return _remote(record, text, f"{cls!r} is not an exception class here")
    notes = list(record[11])
    if custom:
        try:
            exc = _load(custom)
        except Exception as error:
            notes.append(
                f"{NOTE}its own __reduce__ did not rebuild it here ({why(error)}); "
                "rebuilt from its args and attributes instead"
            )
        else:
            if isinstance(exc, BaseException):
                for note in notes:
                    exc.add_note(note)
                return exc
    args: list[Any] = []
    for position, blob in enumerate(arg_blobs):
        try:
            args.append(_load(blob))
        except Exception as error:
            args.append(None)
            notes.append(
                f"{NOTE}argument {position} cannot be unpickled here "
                f"({why(error)}); it is replaced by None"
            )
    if issubclass(cls, BaseExceptionGroup):
        args[1:] = [members]
    base = builtin_base(cls)
    try:
        exc = base.__new__(cls, *args)
    except Exception as error:
        return _remote(record, text, f"it cannot be created here ({why(error)})")
    try:
        base.__init__(exc, *args)  # C-level fields from args (errno, value...)
    except Exception as error:
        notes.append(f"{NOTE}{base.__name__}.__init__ failed here ({why(error)})")
    state = {}
    for key, blob in state_blobs:
        try:
            state[key] = _load(blob)
        except Exception as error:
            notes.append(
                f"{NOTE}attribute {key!r} was dropped: it cannot be unpickled here "
                f"({why(error)})"
            )
    if state:
        _set_state(exc, cls, state, notes)
    for note in notes:
        try:
            exc.add_note(note)
        except Exception:  # __notes__ replaced by something that is not a list
            break
    return exc


def _set_state(
    exc: BaseException, cls: type, state: dict[str, Any], notes: list[str]
) -> None:
    """Set the attributes as unpickling would (a class's own ``__setstate__`` first)."""
    setstate = getattr(cls, "__setstate__", None)
    if setstate is not None and setstate is not BaseException.__setstate__:
        try:
            exc.__setstate__(state)
            return
        except Exception as error:
            notes.append(
                f"{NOTE}its __setstate__ failed here ({why(error)}); "
                "attributes set one by one instead"
            )
    for key, value in state.items():
        try:
            setattr(exc, key, value)
        except Exception as error:
            notes.append(
                f"{NOTE}attribute {key!r} was dropped: it cannot be set here "
                f"({why(error)})"
            )


def unloadable_result(
    func_name: str, error: Exception, kind: str = "auto"
) -> NotShareableError:
    """The error for a result that was pickled in a worker (of *kind*) but cannot be
    unpickled in the caller (raise it ``from error``)."""
    exc = NotShareableError(
        f"the result of {func_name} cannot be rebuilt in the caller: "
        f"{why(error)}; return values whose classes this process can import "
        f"(defined in a module, not only in code {RAN_IN[kind]} ran)"
    )
    exc.add_note(f"{NOTE}unpickling the result of {func_name} raised {why(error)}")
    return exc
