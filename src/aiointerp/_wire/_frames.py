"""The frames of a process worker's pipes: what a message looks like, both ways.

Stdlib only: both sides use it. Every message is a *frame*: a signal byte, a 4-byte
length, and the payload pickled (protocol 5). A payload of more than
:data:`INLINE_MAX` bytes, or with big out-of-band buffers (numpy arrays' data, and
every ``memoryview``), is a :class:`Segment` instead: written to a ``memfd``
(:mod:`aiointerp._wire._segments`) whose descriptor crosses on a Unix datagram socket
(SCM_RIGHTS) with a tag, just before the frame that names it by that tag.
"""

from __future__ import annotations

import os
import pickle
import threading

from . import _big, _segments

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: a frame: signal byte, payload length (4 bytes, little-endian), payload
HEADER = 5
PICKLE_PROTOCOL = 5
#: most bytes of a payload sent in a frame; a bigger one goes in a segment
INLINE_MAX = 1 << 16
#: the first byte of a payload that is not a pickle (a pickle starts with 0x80):
#: the payload is in a segment, whose descriptor came on the socket just before
IN_SEGMENT = b"S"
#: the payload is an outcome whose value is a result file's descriptor, which came
#: on the socket just before (the value is the descriptor's tag)
WITH_FILE = b"F"
#: bytes of a descriptor's tag: its datagram's data
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
    """A message whose payload is too big for a frame: sent by :func:`send_segment`."""

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
    return signal + len(blob).to_bytes(4, "little") + blob


class _Encoder(_big.PieceWriter):
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

    :raises TypeError: the payload cannot be pickled
    :raises ValueError: it holds a released memoryview
    """
    if payload is None:
        return signal + b"\0\0\0\0"
    if _small(payload):  # the common case: one pickle, as fast as can be
        try:
            blob = pickle.dumps(payload, PICKLE_PROTOCOL)
        except TypeError:  # pragma: no cover - _small lets no memoryview through
            pass
        else:
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


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_exactly(fd: int, size: int) -> bytes | None:
    """*size* bytes from the blocking *fd*, or None at end of file."""
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class Abandoned(Exception):
    """The segment being written is not needed any more."""


def _no_check() -> None:
    return None


def send_segment(
    segment: Segment,
    sock: Any,
    tag: int,
    pipe: int,
    check: Callable[[], None] = _no_check,
) -> None:
    """Write *segment*, send its descriptor with *tag*, then its frame on *pipe*.

    :raises Abandoned: *check* raised it; nothing was sent
    :raises OSError: the segment could not be made (nothing was sent), or the
        other side is gone
    """
    fd, size, table = _segments.write(segment.pieces, segment.buffers, check)
    try:
        send_fd(sock, fd, tag)
    finally:
        os.close(fd)  # in flight, the descriptor holds the file
    blob = IN_SEGMENT + pickle.dumps((tag, size, table), PICKLE_PROTOCOL)
    write_all(pipe, inline(segment.signal, blob))


def send_fd(sock: Any, fd: int, tag: int) -> None:
    import socket

    socket.send_fds(sock, [tag.to_bytes(TAG, "little")], [fd])


def receive_fd(sock: Any, tag: int) -> int:
    """The descriptor sent with *tag*, or -1; older ones that nobody took are closed.

    It was sent before the frame that names it: it is there, never waited for.
    """
    import socket

    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, TAG, 1, socket.MSG_DONTWAIT)
        except OSError:  # none (the sender died between the two?)
            return -1
        got = int.from_bytes(data, "little")
        if got == tag and fds:
            return fds[0]
        for fd in fds:
            os.close(fd)
        if not data or got > tag:
            return -1


def load_segment(fd: int, size: int, table: _segments.Table) -> Any:
    """Unpickle the segment *fd* (closed here), its buffers mapped, not copied.

    For a receiver that may hold the GIL as it copies (a process worker, or a host
    taking a rare big message): big ``bytes`` of the stream are read into the
    objects the unpickler makes (``os.preadv``), one copy.
    """
    try:
        views = _segments.buffer_views(fd, table) if table else None
        reader = _big.FileReader(fd, size)
        value = pickle.Unpickler(reader, buffers=views).load()
        del views
        _segments.drop_stream(fd, table)
        return value
    finally:
        os.close(fd)
