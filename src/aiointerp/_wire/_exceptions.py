"""Exceptions raised in a worker, rebuilt in the caller as themselves.

Stdlib only and cheap to import: :func:`encode` runs inside every worker interpreter.

Why not pickle the exception: pickle rebuilds it as ``cls(*exc.args)``, which fails for
the most common custom exception, whose ``__init__`` takes other parameters than the
message it passes up::

    class QuotaExceeded(Exception):
        def __init__(self, user, used):
            super().__init__(f"{user} used {used}")
            self.user = user

and, when ``cls(*exc.args)`` happens to work, it runs ``__init__`` again with the
wrong values; pickle also drops ``__cause__`` and ``__context__``. Instead the worker
describes each exception of the chain as a *record* of parts, each pickled on its
own, so that an attribute that cannot be pickled drops only that attribute (a note
says so):

``(kind, name, message, class, custom, args, state, members, cause, context,
suppress, notes)``

* ``kind``: :data:`_REBUILD`, or :data:`_RAW` for an exception the caller must not
  get as itself (a ``BaseException`` such as ``KeyboardInterrupt`` in the chain) or
  beyond the budget: it becomes a :class:`~aiointerp.RemoteError`
* ``name``, ``message``: qualified class name and ``str()``, for a RemoteError
* ``class``: the pickled class (a reference by name; by value with cloudpickle for a
  class the caller sent by value), ``b""`` if it cannot be pickled
* ``custom``: the whole pickled exception when its class defines its own
  ``__reduce__``/``__reduce_ex__`` (its author said how to rebuild it), else ``b""``
* ``args``: one pickle per item of ``args`` (``OSError``'s with its filename)
* ``state``: ``(name, pickle)`` per attribute: ``__dict__`` (``__notes__`` included)
  and the C-level fields the built-in base pickles (``ImportError.name``...)
* ``members``: record indexes of an exception group's exceptions
* ``cause``, ``context``: record indexes, ``-1`` for none; ``suppress`` is
  ``__suppress_context__``
* ``notes``: aiointerp's notes on what was dropped, and why

The encoded exception is the tuple of its records, the raised one first; links are
indexes, so a cycle in the chain or an exception met twice is encoded once. Every
part is a str, bytes, int, bool or a tuple of them: it crosses the queue as it is.

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
from copyreg import dispatch_table

from ._encoding import RAN_IN, dumps_result
from ._errors import NotShareableError, RemoteError, RemoteTraceback
from ._protocol import RAISED, RAISED_RAW

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Any, Final

    from ._encoding import Outcome

    type Record = tuple[
        int,  # kind
        str,  # name
        str,  # message
        bytes,  # class
        bytes,  # custom
        tuple[bytes, ...],  # args
        tuple[tuple[str, bytes], ...],  # state
        tuple[int, ...],  # members
        int,  # cause
        int,  # context
        bool,  # suppress
        tuple[str, ...],  # notes
    ]
    type Encoded = tuple[Record, ...]

__all__ = ["encode", "rebuild", "unloadable_result"]

_REBUILD: Final = 0
_RAW: Final = 1
_NONE: Final = -1
_PROTOCOL: Final = 5
#: links followed from the raised exception (cause, context, group members)
_MAX_DEPTH: Final = 32
#: exceptions rebuilt per outcome; the ones after become RemoteErrors (str only)
_MAX_RECORDS: Final = 1000
_HEAPTYPE: Final = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes not built into CPython
# C-level fields that the built-in __reduce__ leaves out, though they are plain data
_FIELDS: Final = {NameError: ("name",)}
_NOTE: Final = "aiointerp: "


def _builtin_base(cls: type[BaseException]) -> type[BaseException]:
    """The nearest base of ``cls`` built into CPython (static): its ``__new__`` is safe
    to call for ``cls`` and runs no user code."""
    for klass in cls.__mro__:
        if not klass.__flags__ & _HEAPTYPE:
            return klass
    return BaseException  # pragma: no cover - BaseException is in every such __mro__


def _type_name(cls: type) -> str:
    module = cls.__module__
    if module == "__mp_main__":  # the host's __main__, as workers name it
        module = "__main__"
    name = f"{module}.{cls.__qualname__}"
    return name.removeprefix("builtins.")


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# -- worker side


def _dumps(value: object) -> bytes:
    try:
        return pickle.dumps(value, _PROTOCOL)
    except Exception:
        return dumps_result(value)


def _custom_reduce(cls: type, base: type) -> bool:
    """Does ``cls`` say how to pickle itself (rather than the built-in base's way)?"""
    if cls.__reduce__ is not base.__reduce__:
        return True
    if cls.__reduce_ex__ is not base.__reduce_ex__:
        return True
    return cls in dispatch_table  # copyreg.pickle(cls, ...): tblib's, for one


def encode(exc: BaseException) -> Encoded:
    """Describe ``exc`` and its chain as records of picklable parts (in the worker)."""
    records: list[Record | None] = []
    memo: dict[int, int] = {}

    def visit(exc: BaseException, depth: int, raw: bool = False) -> int:
        index = memo.get(id(exc))
        if index is not None:
            return index
        index = len(records)
        memo[id(exc)] = index
        records.append(None)
        records[index] = _record(exc, depth, raw or len(records) > _MAX_RECORDS, visit)
        return index

    visit(exc, 0)
    return tuple(records)  # type: ignore[arg-type]


def _record(exc: BaseException, depth: int, raw: bool, visit: Any) -> Record:
    cls = type(exc)
    name = _type_name(cls)
    try:
        message = str(exc)
    except Exception as error:
        message = f"<str() failed: {error!r}>"
    notes: list[str] = []
    cause = context = _NONE
    if depth < _MAX_DEPTH:
        if exc.__cause__ is not None:
            cause = visit(exc.__cause__, depth + 1)
        if exc.__context__ is not None:
            context = visit(exc.__context__, depth + 1)
    elif exc.__cause__ is not None or exc.__context__ is not None:
        notes.append(f"{_NOTE}the exception chain is cut here (after {depth} links)")
    suppress = exc.__suppress_context__
    if raw or not isinstance(exc, Exception):
        # never a BaseException as itself: the caller might raise it into its loop
        return (_RAW, name, message, b"", b"", (), (), (), cause, context, suppress, ())
    base = _builtin_base(cls)
    try:
        class_blob = _dumps(cls)
    except Exception as error:
        class_blob = b""
        notes.append(f"{_NOTE}its class cannot be pickled ({_why(error)})")
    custom = b""
    if _custom_reduce(cls, base):
        try:
            custom = _dumps(exc)
        except Exception:
            pass  # rebuilt the default way below
    try:
        reduced: Any = base.__reduce__(exc)
        args = tuple(reduced[1])
        state = dict(reduced[2]) if len(reduced) > 2 and reduced[2] else {}
    except Exception:  # pragma: no cover - the built-in __reduce__ does not fail
        args, state = exc.args, dict(getattr(exc, "__dict__", {}))
    for klass, fields in _FIELDS.items():
        if isinstance(exc, klass):
            for field in fields:
                value = getattr(exc, field, None)
                if value is not None:
                    state.setdefault(field, value)
    members: tuple[int, ...] = ()
    if isinstance(exc, BaseExceptionGroup):
        args = args[:1]  # the message; the exceptions are records of their own
        if depth < _MAX_DEPTH:
            members = tuple(visit(member, depth + 1) for member in exc.exceptions)
        else:  # a group cannot be empty: its members become RemoteErrors
            members = tuple(visit(m, depth + 1, raw=True) for m in exc.exceptions)
    arg_blobs = []
    for position, arg in enumerate(args):
        try:
            arg_blobs.append(_dumps(arg))
        except Exception as error:
            try:
                shown = repr(arg)
            except Exception:
                shown = f"<{type(arg).__name__} object>"
            arg_blobs.append(pickle.dumps(shown, _PROTOCOL))
            notes.append(
                f"{_NOTE}argument {position} cannot be pickled ({_why(error)}); "
                "it is replaced by its repr()"
            )
    state_blobs = []
    for key, value in state.items():
        try:
            state_blobs.append((str(key), _dumps(value)))
        except Exception as error:
            notes.append(
                f"{_NOTE}attribute {key!r} was dropped: it cannot be pickled "
                f"({_why(error)})"
            )
    return (
        _REBUILD,
        name,
        message,
        class_blob,
        custom,
        tuple(arg_blobs),
        tuple(state_blobs),
        members,
        cause,
        context,
        suppress,
        tuple(notes),
    )


# -- host side


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
    except Exception as error:  # pragma: no cover - a defect of ours: say so
        name, message = encoded[0][1], encoded[0][2]
        exc = RemoteError(name, message, text)
        exc.add_note(f"{_NOTE}{name} could not be rebuilt here ({_why(error)})")
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
    if not isinstance(built[0], Exception):  # pragma: no cover - the worker sends RAW
        built[0] = _remote(encoded[0], text, "it is not an Exception in this process")
    for index, record in enumerate(encoded):
        exc = built[index]
        cause, context, suppress = record[8], record[9], record[10]
        try:
            if context != _NONE:
                exc.__context__ = built[context]
            if cause != _NONE:
                exc.__cause__ = built[cause]
            exc.__suppress_context__ = suppress
        except Exception:  # pragma: no cover - a C type refusing its chain
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
    error.add_note(f"{_NOTE}{record[1]} is raised as RemoteError: {why}")
    return error


def _create(record: Record, members: list[BaseException], text: str) -> BaseException:
    kind, _, _, class_blob, custom, arg_blobs, state_blobs, *_ = record
    if kind == _RAW:
        return _remote(record, text, "it is not an Exception that may reach the caller")
    if not class_blob:
        return _remote(record, text, "its class cannot be pickled in the worker")
    try:
        cls = _load(class_blob)
    except Exception as error:
        return _remote(
            record, text, f"its class cannot be found in this process ({_why(error)})"
        )
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return _remote(record, text, f"{cls!r} is not an exception class here")
    notes = list(record[11])
    if custom:
        try:
            exc = _load(custom)
        except Exception as error:
            notes.append(
                f"{_NOTE}its own __reduce__ did not rebuild it here ({_why(error)}); "
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
                f"{_NOTE}argument {position} cannot be unpickled here "
                f"({_why(error)}); it is replaced by None"
            )
    if issubclass(cls, BaseExceptionGroup):
        args[1:] = [members]
    base = _builtin_base(cls)
    try:
        exc = base.__new__(cls, *args)
    except Exception as error:
        return _remote(record, text, f"it cannot be created here ({_why(error)})")
    try:
        base.__init__(exc, *args)  # C-level fields from args (errno, value...)
    except Exception as error:
        notes.append(f"{_NOTE}{base.__name__}.__init__ failed here ({_why(error)})")
    state = {}
    for key, blob in state_blobs:
        try:
            state[key] = _load(blob)
        except Exception as error:
            notes.append(
                f"{_NOTE}attribute {key!r} was dropped: it cannot be unpickled here "
                f"({_why(error)})"
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
                f"{_NOTE}its __setstate__ failed here ({_why(error)}); "
                "attributes set one by one instead"
            )
    for key, value in state.items():
        try:
            setattr(exc, key, value)
        except Exception as error:
            notes.append(
                f"{_NOTE}attribute {key!r} was dropped: it cannot be set here "
                f"({_why(error)})"
            )


def unloadable_result(
    func_name: str, error: Exception, kind: str = "auto"
) -> NotShareableError:
    """The error for a result that was pickled in a worker (of *kind*) but cannot be
    unpickled in the caller (raise it ``from error``)."""
    exc = NotShareableError(
        f"the result of {func_name} cannot be rebuilt in the caller: "
        f"{_why(error)}; return values whose classes this process can import "
        f"(defined in a module, not only in code {RAN_IN[kind]} ran)"
    )
    exc.add_note(f"{_NOTE}unpickling the result of {func_name} raised {_why(error)}")
    return exc


def encode_exception(job_id: int, exc: BaseException, text: str) -> Outcome:
    if isinstance(exc, Exception):  # a BaseException stays inside: RAISED_RAW
        try:
            return (job_id, RAISED, encode(exc), text, False)
        except Exception:  # pragma: no cover - a defect of ours: the worker survives
            pass
    kind = type(exc)
    name = f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")
    try:
        message = str(exc)
    except Exception as error:
        message = f"<str() failed: {error!r}>"
    return (job_id, RAISED_RAW, (name, message), text, False)
