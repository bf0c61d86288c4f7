"""The I/O of a process worker's channels: frames on pipes, descriptors on a socket.

Stdlib only: both ends use it (:class:`aiointerp._kinds._pipelink.PipeLink` on the
host, :class:`aiointerp._inside._ends.PipeChannel` in the child). What the bytes
mean is :mod:`aiointerp._wire._frames`'s. A descriptor (of a segment, or of a result
file) crosses on the Unix datagram socket (SCM_RIGHTS) with its tag as the
datagram's data, *before* the frame that names it by that tag: a receiver that has
read the frame finds the descriptor waiting, and never waits for it.
"""

from __future__ import annotations

import os
import pickle

from . import _frames, _pieces, _segments

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "Abandoned",
    "load_segment",
    "read_exactly",
    "receive_fd",
    "send_fd",
    "send_segment",
    "write_all",
]


def write_all(fd: int, data: bytes) -> None:
    """Write all of *data* to the blocking *fd*."""
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
    segment: _frames.Segment,
    sock: Any,
    tag: int,
    pipe: int,
    check: Callable[[], None] = _no_check,
) -> None:
    """Write *segment*, send its descriptor with *tag*, then its frame on *pipe*.

    *check* runs between the chunks of the segment's file (see
    :func:`aiointerp._wire._segments.write`).

    :raises Abandoned: *check* raised it; nothing was sent
    :raises OSError: the segment could not be made (nothing was sent), or the
        other side is gone
    """
    fd, size, table = _segments.write(segment.pieces, segment.buffers, check)
    try:
        send_fd(sock, fd, tag)
    finally:
        os.close(fd)  # in flight, the descriptor holds the file
    write_all(pipe, _frames.segment_frame(segment.signal, tag, size, table))


def send_fd(sock: Any, fd: int, tag: int) -> None:
    """Send a duplicate of *fd* on the datagram socket *sock*, with *tag*."""
    import socket

    socket.send_fds(sock, [tag.to_bytes(_frames.TAG, "little")], [fd])


def receive_fd(sock: Any, tag: int) -> int:
    """The descriptor sent with *tag*, or -1; older ones that nobody took are closed.

    Never waits: a descriptor that is not there now (the sender died between the
    descriptor and its frame, or a bug lost it) is -1.
    """
    while True:
        data, fds = _receive_datagram(sock)
        if data is None:  # none
            return -1
        got = int.from_bytes(data, "little")
        if got == tag and fds:
            return fds[0]
        for fd in fds:
            os.close(fd)
        if not data or got > tag:
            return -1


def _receive_datagram(sock: Any) -> tuple[bytes | None, list[int]]:
    """The next datagram on *sock* and its descriptors; ``None`` if there is none now."""
    import array
    import socket

    fds = array.array("i")
    try:
        # not socket.recv_fds: on 3.13 it passes no flags to recvmsg, and would wait
        data, ancdata, _, _ = sock.recvmsg(
            _frames.TAG, socket.CMSG_LEN(fds.itemsize), socket.MSG_DONTWAIT
        )
    except OSError:  # BlockingIOError: nothing; or the socket is gone
        return None, []
    for level, kind, cmsg in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(cmsg[: len(cmsg) - len(cmsg) % fds.itemsize])
    return data, list(fds)


def load_segment(fd: int, size: int, table: _segments.Table) -> Any:
    """Unpickle the segment *fd* (closed here), its buffers mapped, not copied.

    For a receiver that may hold the GIL as it copies (a process worker, or a host
    taking a rare big message): big ``bytes`` of the stream are read into the
    objects the unpickler makes (``os.preadv``), one copy.
    """
    try:
        views = _segments.buffer_views(fd, table) if table else None
        reader = _pieces.FileReader(fd, size)
        value = pickle.Unpickler(reader, buffers=views).load()
        del views
        _segments.drop_stream(fd, table)
        return value
    finally:
        os.close(fd)
