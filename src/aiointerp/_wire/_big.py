"""Big values: what is big, how big arguments reach a worker, where big results wait.

Stdlib only: both sides use it (the host half that needs anyio is
:mod:`aiointerp._host._bigvalues`; results are encoded by :mod:`aiointerp._wire._spill`).
Small values cross as :mod:`aiointerp._wire._encoding` sends them; :func:`classify`
says which are not small.

* Arguments (host to worker) come in one of the ``args_mode`` of
  :mod:`aiointerp._wire._protocol`, which :func:`decode_args` turns back into a tuple:
  ``SHARED`` (as they are), ``PICKLED`` (one pickle), :data:`FRAMES` (a tuple of
  ``bytes`` and ``memoryview`` pieces whose concatenation is the pickle),
  ``BUFFERS`` (pieces, and the pickle's out-of-band buffers as views of the
  caller's memory: the worker copies them), ``MAPPED`` (the same, the buffers
  mapped from a segment: used as they are), or ``ABANDONED`` (the host gave the
  call up while it sent the arguments).
* Results (worker to host) in a file: the outcome
  ``(job_id, OK_PICKLED, fd, (size, inode), False)`` says that the result's pickle
  is the first *size* bytes of the file *fd* (:func:`in_file`); with big
  out-of-band buffers ``(size, inode, table)``: they follow the stream, laid out
  as a segment's (:mod:`aiointerp._wire._segments`). The descriptor is the
  worker's: it stays open until the worker's next call (:func:`decode_args`
  closes it), its interpreter's end, or (a process worker) until it crossed to
  the host (:func:`sent`). Descriptors are process-wide, so the file outlives the
  worker's interpreter, unlike a view of that interpreter's memory.
"""

from __future__ import annotations

import os
import pickle

from . import _pieces, _protocol, _segments

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

    from ._encoding import Outcome

__all__ = [
    "BULKY",
    "FRAMES",
    "OTHER",
    "SHARED_BYTES_MAX",
    "SHARED_ITEMS_MAX",
    "SMALL",
    "SPILL_MIN",
    "classify",
    "decode_args",
    "ResultFile",
    "in_file",
    "result_file",
    "sent",
]

#: args_mode: the payload is a tuple of pieces (``bytes`` and ``memoryview``) whose
#: concatenation is the pickle of the arguments
FRAMES: Final = _protocol.FRAMES

#: :func:`classify`: shareable, and cheap to send as it is
SMALL: Final = 0
#: :func:`classify`: not shareable: pickled
OTHER: Final = 1
#: :func:`classify`: too big to walk or to cross the queue on the loop: pickled
BULKY: Final = 2

#: items (in all nested tuples) above which a shareable value is pickled instead:
#: walking and sending it cost the loop 0.1 to 0.4 µs per item
SHARED_ITEMS_MAX: Final = 8192
#: bytes of str/bytes above which a shareable *result* is sent in a file: the host's
#: queue ``get`` copies them on the loop (about 1 ms per MiB)
SHARED_BYTES_MAX: Final = 1 << 20
#: size from which a result's pickle is sent in a file: unpickling 64 KiB of small
#: objects takes the loop up to about 1 ms
SPILL_MIN: Final = 1 << 16

_UNLIMITED: Final = 1 << 62
_FLAT: Final = frozenset({type(None), bool, float})
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def classify(
    obj: object,
    views: bool = True,
    max_items: int = SHARED_ITEMS_MAX,
    max_bytes: int = _UNLIMITED,
) -> int:
    """:data:`SMALL`, :data:`OTHER` or :data:`BULKY`: how *obj* should cross.

    :func:`aiointerp._wire._encoding.is_shareable`, bounded: it stops at *max_items*
    items of nested tuples or *max_bytes* characters of ``str``/``bytes`` and says
    :data:`BULKY` (whether the rest is shareable or not: it is pickled either way).
    With ``views=False`` a memoryview is :data:`OTHER` (results).
    """
    kind = type(obj)
    if kind is not tuple:
        if kind is int:
            return SMALL if _INT64_MIN <= obj <= _INT64_MAX else OTHER  # type: ignore[operator]
        if kind in _FLAT:
            return SMALL
        if kind is str or kind is bytes:
            return SMALL if len(obj) <= max_bytes else BULKY  # type: ignore[arg-type]
        return SMALL if views and kind is memoryview else OTHER
    items = max_items
    data = max_bytes
    stack = [obj]
    while stack:
        current: tuple[Any, ...] = stack.pop()  # type: ignore[assignment]
        items -= len(current)
        if items < 0:
            return BULKY
        for item in current:
            kind = type(item)
            if kind is int:
                if _INT64_MIN <= item <= _INT64_MAX:
                    continue
                return OTHER
            if kind in _FLAT:
                continue
            if kind is str or kind is bytes:
                data -= len(item)
                if data < 0:
                    return BULKY
            elif kind is tuple:
                stack.append(item)
            elif kind is not memoryview or not views:
                return OTHER
    return SMALL


# -- arguments, in the worker


def decode_args(
    mode: int, args: Any, loads: Callable[..., Any] = pickle.loads
) -> tuple[Any, ...]:
    """The arguments of a call, from ``(args_mode, payload)``; *loads* unpickles.

    *loads* is called as ``loads(blob)``, or ``loads(blob, buffers)`` for a pickle
    with out-of-band buffers. Every call starts here: the previous call's result
    file is closed first (the host has read it, or never will).

    :raises Interrupted: ``ABANDONED``: the host gave up the call while it sent
        its arguments
    """
    if result_file.fd >= 0:
        result_file.close()
    if mode == _protocol.SHARED:
        return args  # type: ignore[no-any-return]
    if mode == _protocol.PICKLED:
        return loads(args)  # type: ignore[no-any-return]
    if mode == _protocol.ABANDONED:
        _abandoned(args)
    buffers: list[Any] | None = None
    pieces = args
    if mode != FRAMES:  # BUFFERS or MAPPED
        pieces, buffers = args
        if mode == _protocol.BUFFERS:  # views of the caller's memory: our own copy
            buffers = [bytearray(buffer) for buffer in buffers]
    try:
        # the pieces are views of the caller's memory: the unpickler copies each,
        # under this worker's GIL, not the host's
        reader = _pieces.PieceReader(pieces)
        return pickle.Unpickler(reader, buffers=buffers).load()  # type: ignore[no-any-return]
    except (AttributeError, ImportError):
        # something of __main__: *loads* knows how to load the host's main first
        if buffers is None:
            return loads(b"".join(pieces))  # type: ignore[no-any-return]
        return loads(b"".join(pieces), buffers)  # type: ignore[no-any-return]


def _abandoned(reason: str | None) -> None:
    if reason is None:
        from ._errors import Interrupted

        raise Interrupted("the call was cancelled before its arguments arrived")
    raise RuntimeError(f"aiointerp could not send the arguments: {reason}")


# -- the worker's result file


def in_file(outcome: Outcome) -> bool:
    """Is *outcome* a result sent in a file (``a`` the descriptor, ``b`` its size)?"""
    return outcome[1] == _protocol.OK_PICKLED and outcome[3] is not None


def sent(fd: int) -> None:
    """The host holds a descriptor of the result file *fd* of its own now: close ours.

    For a process worker, once the descriptor crossed (:mod:`aiointerp._wire._pipes`):
    a result the host maps is then freed as soon as the host drops it.
    """
    if result_file.fd == fd:
        result_file.close()


class ResultFile:
    """The worker's one open result file, closed at its next call or at its exit."""

    __slots__ = ("fd", "registered")

    def __init__(self) -> None:
        self.fd = -1
        self.registered = False

    def create(self) -> int:
        if self.fd >= 0:
            self.close()
        if not self.registered:
            import atexit  # runs when this interpreter ends, before its destruction

            atexit.register(self.close)
            self.registered = True
        self.fd = _segments.create("aiointerp-result")
        return self.fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


#: this interpreter's result file (each interpreter imports its own)
result_file = ResultFile()
