"""A pickle's ``file`` objects: pieces kept by reference, and reads without the GIL.

Stdlib only: both sides use them. :class:`PieceWriter` keeps what the C pickler
writes as pieces (big buffers by reference, not copied), :class:`PieceReader`
unpickles from such pieces, :class:`FileReader` from a file with ``os.pread``. Each
takes a callable that runs between its steps: to abandon the work, or to hand the
event loop a turn.
"""

from __future__ import annotations

import os
import pickle

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Final

    type Piece = bytes | memoryview

__all__ = ["READ_CHUNK", "FileReader", "PieceReader", "PieceWriter", "no_pace"]

#: bytes copied between two calls of ``pace`` when a buffer is read
READ_CHUNK: Final = 1 << 20


def no_pace() -> None:
    """A *check* or *pace* that does nothing."""
    return None


class PieceWriter:
    """A pickle's ``file``: keeps its pieces, big buffers by reference, not copied.

    The C pickler writes a frame at a time (64 KiB), and hands every ``bytes``,
    ``bytearray`` or :class:`pickle.PickleBuffer` of 64 KiB or more to ``write()``
    as the object itself: a ``bytes`` is kept as it is, the others as a flat
    ``memoryview`` of their memory. *check* runs after each write (it may raise to
    abandon the pickling, or hand the event loop a turn).
    """

    __slots__ = ("check", "pieces")

    def __init__(self, check: Callable[[], None] = no_pace) -> None:
        self.pieces: list[Piece] = []
        self.check = check

    def write(self, data: Any) -> None:
        kind = type(data)
        if kind is not bytes:
            if kind is pickle.PickleBuffer:
                data = data.raw()  # flat bytes, also for a Fortran-ordered buffer
            else:
                data = memoryview(data).cast("B")
        self.pieces.append(data)
        self.check()


class PieceReader:
    """A pickle's ``file`` made of pieces: what :class:`PieceWriter` kept."""

    __slots__ = ("index", "offset", "pieces")

    def __init__(self, pieces: Sequence[Piece]) -> None:
        self.pieces = pieces
        self.index = 0
        self.offset = 0

    def read(self, n: int = -1) -> bytes:
        chunks: list[bytes] = []
        pieces = self.pieces
        while n and self.index < len(pieces):
            piece = pieces[self.index]
            offset = self.offset
            take = len(piece) - offset
            if 0 <= n < take:
                take = n
            if offset == 0 and take == len(piece) and type(piece) is bytes:
                chunks.append(piece)  # a whole frame: no copy
            else:
                chunks.append(bytes(piece[offset : offset + take]))
            self.offset = offset + take
            if self.offset == len(piece):
                self.index += 1
                self.offset = 0
            n -= take
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        pieces = self.pieces
        while done < len(view) and self.index < len(pieces):
            piece = pieces[self.index]
            offset = self.offset
            take = min(len(piece) - offset, len(view) - done)
            view[done : done + take] = piece[offset : offset + take]
            done += take
            self.offset = offset + take
            if self.offset == len(piece):
                self.index += 1
                self.offset = 0
        return done

    def readline(self) -> bytes:  # only for protocol 0 opcodes, never written here
        line = bytearray()
        while not line.endswith(b"\n"):
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return bytes(line)


class FileReader:
    """A pickle's ``file`` read with ``os.pread``: the kernel copies, without the GIL.

    *pace* runs before each read, and between the slices of a big buffer.
    """

    __slots__ = ("fd", "pace", "pos", "size")

    def __init__(self, fd: int, size: int, pace: Callable[[], None] = no_pace) -> None:
        self.fd = fd
        self.size = size
        self.pos = 0
        self.pace = pace

    def read(self, n: int = -1) -> bytes:
        self.pace()
        left = self.size - self.pos
        if n < 0 or n > left:
            n = left
        data = os.pread(self.fd, n, self.pos)
        while len(data) < n:  # a regular file reads short only at its end
            more = os.pread(self.fd, n - len(data), self.pos + len(data))
            if not more:
                break
            data += more
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view):
            self.pace()
            chunk = view[done : done + READ_CHUNK]
            got = _preadv(self.fd, chunk, self.pos)
            if not got:
                break
            done += got
            self.pos += got
        return done

    def readline(self) -> bytes:  # only for protocol 0 opcodes, never written here
        line = b""
        while not line.endswith(b"\n") and self.pos < self.size:
            line += self.read(1)
        return line


def _preadv(fd: int, chunk: memoryview, pos: int) -> int:
    if _HAVE_PREADV:
        return os.preadv(fd, [chunk], pos)
    data = os.pread(fd, len(chunk), pos)  # macOS < 11: one more copy
    chunk[: len(data)] = data
    return len(data)


_HAVE_PREADV = hasattr(os, "preadv")
