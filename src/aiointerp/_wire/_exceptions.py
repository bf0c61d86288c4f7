"""Exceptions raised in a worker, encoded there to be rebuilt in the caller as themselves.

Stdlib only and cheap to import: :func:`encode` runs inside every worker. The caller's
half is :mod:`aiointerp._wire._rebuild`.

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

* ``kind``: :data:`REBUILD`, or :data:`RAW` for an exception the caller must not
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
"""

from __future__ import annotations

import pickle
from copyreg import dispatch_table

from ._encoding import dumps_result
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

__all__ = [
    "NOTE",
    "NO_LINK",
    "RAW",
    "REBUILD",
    "builtin_base",
    "encode",
    "encode_exception",
    "why",
]

#: a record's kinds: rebuilt as itself, or raw (it becomes a RemoteError)
REBUILD: Final = 0
RAW: Final = 1
#: a record's cause or context when it has none
NO_LINK: Final = -1
_PROTOCOL: Final = 5
#: links followed from the raised exception (cause, context, group members)
_MAX_DEPTH: Final = 32
#: exceptions rebuilt per outcome; the ones after become RemoteErrors (str only)
_MAX_RECORDS: Final = 1000
_HEAPTYPE: Final = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes not built into CPython
# C-level fields that the built-in __reduce__ leaves out, though they are plain data
_FIELDS: Final = {NameError: ("name",)}
#: what starts every note of aiointerp's on an exception
NOTE: Final = "aiointerp: "


def builtin_base(cls: type[BaseException]) -> type[BaseException]:
    """The nearest base of ``cls`` built into CPython (static): its ``__new__`` is safe
    to call for ``cls`` and runs no user code."""
    # BaseException itself ends every such __mro__
    return next(klass for klass in cls.__mro__ if not klass.__flags__ & _HEAPTYPE)


def _type_name(cls: type) -> str:
    module = cls.__module__
    if module == "__mp_main__":  # the host's __main__, as workers name it
        module = "__main__"
    name = f"{module}.{cls.__qualname__}"
    return name.removeprefix("builtins.")


def why(error: BaseException) -> str:
    """*error* as a note shows it: ``Type: message``."""
    return f"{type(error).__name__}: {error}"


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
    cause = context = NO_LINK
    if depth < _MAX_DEPTH:
        if exc.__cause__ is not None:
            cause = visit(exc.__cause__, depth + 1)
        if exc.__context__ is not None:
            context = visit(exc.__context__, depth + 1)
    elif exc.__cause__ is not None or exc.__context__ is not None:
        notes.append(f"{NOTE}the exception chain is cut here (after {depth} links)")
    suppress = exc.__suppress_context__
    if raw or not isinstance(exc, Exception):
        # never a BaseException as itself: the caller might raise it into its loop
        return (RAW, name, message, b"", b"", (), (), (), cause, context, suppress, ())
    base = builtin_base(cls)
    try:
        class_blob = _dumps(cls)
    except Exception as error:
        class_blob = b""
        notes.append(f"{NOTE}its class cannot be pickled ({why(error)})")
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
    except Exception:  # its __dict__ refused to be copied (a dict subclass's keys())
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
                f"{NOTE}argument {position} cannot be pickled ({why(error)}); "
                "it is replaced by its repr()"
            )
    state_blobs = []
    for key, value in state.items():
        try:
            state_blobs.append((str(key), _dumps(value)))
        except Exception as error:
            notes.append(
                f"{NOTE}attribute {key!r} was dropped: it cannot be pickled "
                f"({why(error)})"
            )
    return (
        REBUILD,
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


def encode_exception(job_id: int, exc: BaseException, text: str) -> Outcome:
    """The outcome of job *job_id* that raised *exc* (*text*: its remote traceback).

    ``RAISED`` with :func:`encode`'s records for an :class:`Exception`; else, or if
    it cannot be encoded, ``RAISED_RAW`` with its name and ``str()`` only.
    """
    if isinstance(exc, Exception):  # a BaseException stays inside: RAISED_RAW
        try:
            return (job_id, RAISED, encode(exc), text, False)
        except Exception:  # a defect of ours, or of the exception: the worker survives
            pass
    kind = type(exc)
    name = f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")
    try:
        message = str(exc)
    except Exception as error:
        message = f"<str() failed: {error!r}>"
    return (job_id, RAISED_RAW, (name, message), text, False)
