"""The frames of a process worker's pipes: a pure codec, both ways, no I/O.

Stdlib only: both sides use it. Every message is a *frame*: a signal byte, a 4-byte
little-endian length (:data:`HEADER` bytes in all), and a payload. :func:`frame`
makes a message of a signal and a payload: a frame, or a :class:`Segment` when the
payload is big; :func:`decode` reads a frame's payload back. A payload is a pickle
(protocol 5), or one of two references to a descriptor sent beside the pipe:
:data:`IN_SEGMENT` (the message is in a segment, :func:`segment_frame`) or
:data:`WITH_FILE` (an outcome whose result is in a file, :func:`file_frame`).
Moving frames and descriptors is :mod:`aiointerp._wire._pipes`'s.
"""

from __future__ import annotations

import pickle
import threading

from . import _pieces, _segments

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Any

#: a frame's header: signal byte, payload length (4 bytes, little-endian)
HEADER = 5
PICKLE_PROTOCOL = 5
#: most bytes of a payload sent in a frame; a bigger one goes in a segment
INLINE_MAX = 1 << 16
#: the first byte of a payload that is not a pickle (a pickle starts with 0x80):
#: the payload is in a segment, whose descriptor is sent with a tag
IN_SEGMENT = b"S"
#: the payload is an outcome whose value is the tag of a result file's descriptor
WITH_FILE = b"F"
#: bytes of a descriptor's tag
TAG = 8


class _Pickler(pickle.Pickler):
    """Pickles a frame's payload; a ``memoryview`` as a PickleBuffer, out of band if big."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is memoryview:
            if obj.contiguous:  # raises for a released view: nothing is sent
                return memoryview, (pickle.PickleBuffer(obj),)
            return memoryview, (obj.tobytes(),)
        return NotImplemented


class Segment:
    """A message whose payload is too big for a frame: a pickle's pieces and buffers.

    Its stream is the concatenation of :attr:`pieces`; :attr:`buffers` are its
    out-of-band buffers (flat views, not copies), as
    :func:`aiointerp._wire._segments.write` lays them out.
    """

    __slots__ = ("buffers", "job", "pieces", "signal", "size")

    def __init__(
        self,
        signal: bytes,
        pieces: list[Any],
        buffers: list[memoryview],
        job: tuple[Any, ...] | None,
    ) -> None:
        self.signal = signal
        self.pieces = pieces
        self.buffers = buffers
        self.size = sum(len(p) for p in pieces) + sum(b.nbytes for b in buffers)
        #: the job it carries, or None: what an abandoned job is replaced with
        self.job = job


def inline(signal: bytes, blob: bytes) -> bytes:
    """The frame of *signal* with the payload *blob*, as it is."""
    return signal + len(blob).to_bytes(4, "little") + blob


def header(data: bytes) -> tuple[bytes, int]:
    """The signal and the payload's length of a frame's :data:`HEADER` bytes.

    :raises ValueError: *data* is not a whole header
    """
    if len(data) != HEADER:
        raise ValueError(f"a frame's header has {HEADER} bytes, not {len(data)}")
    return data[:1], int.from_bytes(data[1:], "little")


def segment_frame(signal: bytes, tag: int, size: int, table: _segments.Table) -> bytes:
    """The frame that names a segment: its descriptor's *tag*, stream *size*, *table*."""
    blob = pickle.dumps((tag, size, table), PICKLE_PROTOCOL)
    return inline(signal, IN_SEGMENT + blob)


def file_frame(signal: bytes, outcome: tuple[Any, ...], tag: int) -> bytes:
    """The frame of an outcome whose result file's descriptor is sent with *tag*."""
    blob = pickle.dumps((*outcome[:2], tag, *outcome[3:]), PICKLE_PROTOCOL)
    return inline(signal, WITH_FILE + blob)


def decode(blob: bytes) -> tuple[bytes, Any]:
    """``(marker, what)`` of a frame's payload *blob*.

    The marker is ``b""`` for a pickled payload (*what* is the payload),
    :data:`IN_SEGMENT` (*what* is ``(tag, size, table)``), or :data:`WITH_FILE`
    (*what* is the outcome, whose value is the file's tag).

    :raises pickle.UnpicklingError: *blob* is none of these
    """
    marker = blob[:1]
    if marker == IN_SEGMENT or marker == WITH_FILE:
        return marker, pickle.loads(blob[1:])
    return b"", pickle.loads(blob)


class _Encoder(_pieces.PieceWriter):
    """Pickles payloads into pieces (big buffers by reference) and out-of-band buffers.

    One per thread, reused with its pickler: creating one costs more than a small
    payload's pickle.
    """

    __slots__ = ("busy", "oob", "pickler")

    def __init__(self) -> None:
        super().__init__()
        self.oob = _segments.OutOfBand()
        self.pickler = _Pickler(self, PICKLE_PROTOCOL, buffer_callback=self.oob)
        self.busy = False

    def encode(self, payload: Any) -> tuple[list[Any], list[memoryview]]:
        self.busy = True
        self.pieces = []
        self.oob.buffers = []
        try:
            self.pickler.dump(payload)
            return self.pieces, self.oob.buffers
        finally:
            self.pickler.clear_memo()
            self.pieces = []
            self.oob.buffers = []
            self.busy = False


_local = threading.local()


def frame(
    signal: bytes, payload: Any, job: tuple[Any, ...] | None = None
) -> bytes | Segment:
    """A message: a frame, or a segment if its payload is big.

    Big means a pickle of more than :data:`INLINE_MAX` bytes, or one with big
    out-of-band buffers (numpy arrays' data, and every contiguous ``memoryview``).

    :raises TypeError: the payload cannot be pickled
    :raises ValueError: it holds a released memoryview
    """
    if payload is None:
        return signal + b"\0\0\0\0"
    if _small(payload):  # the common case: one pickle, as fast as can be
        # scalars, str, bytes and tuples of them: pickle refuses none of them
        blob = pickle.dumps(payload, PICKLE_PROTOCOL)
        if len(blob) <= INLINE_MAX:
            return inline(signal, blob)
    encoder: _Encoder | None = getattr(_local, "encoder", None)
    if encoder is None or encoder.busy:  # busy: a __reduce__ that sends a message
        encoder = _local.encoder = _Encoder()
    pieces, buffers = encoder.encode(payload)
    if buffers or sum(len(piece) for piece in pieces) > INLINE_MAX:
        return Segment(signal, pieces, buffers, job)
    return inline(signal, pieces[0] if len(pieces) == 1 else b"".join(pieces))


_SCALARS = frozenset({type(None), bool, int, float})
#: items that :func:`_small` looks at before it gives up
_SMALL_ITEMS = 64


def _small(payload: tuple[Any, ...]) -> bool:
    """Is *payload* a few scalars, strings and bytes, together well under a frame?"""
    budget = INLINE_MAX // 2
    items = _SMALL_ITEMS
    stack = [payload]
    while stack:
        current = stack.pop()
        items -= len(current)
        if items < 0:
            return False
        for item in current:
            kind = type(item)
            if kind in _SCALARS:
                continue
            if kind is str or kind is bytes:
                budget -= len(item)
                if budget < 0:
                    return False
            elif kind is tuple:
                stack.append(item)
            else:  # a memoryview, a list...: the general way
                return False
    return True
