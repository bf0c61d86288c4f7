"""Segments: a pickle and its out-of-band buffers in one file in memory.

Stdlib only: both sides use it (for big results of every kind, and for the big
messages of process workers).

A segment is a ``memfd`` (a deleted temporary file where there is none) that holds a
pickle's stream (protocol 5) from offset 0, then the pickle's *out-of-band buffers*:
the :class:`pickle.PickleBuffer` objects of :data:`OOB_MIN` bytes or more that its
``buffer_callback`` (:class:`OutOfBand`) kept apart, which is where numpy arrays (and
other producers of protocol 5 buffers) put their data. The first buffer starts at a
page boundary, the others at 64-byte boundaries, as a *table* ``((offset, size),
...)`` says. A reader maps the buffers (:func:`buffer_views`) and hands the
unpickler views of the mapping (``buffers=``): an array comes out over the
segment's pages, without a copy, and keeps them as long as it lives.

A segment has no name: it crosses to another process as a descriptor, and the
kernel frees it with its last descriptor or mapping, whoever ends when, and
however. Nothing is ever left in ``/dev/shm``.
"""

from __future__ import annotations

import os
import pickle

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Final

    type Table = tuple[tuple[int, int], ...]
    """Where a segment's out-of-band buffers are: ``(offset, size)`` each."""

__all__ = [
    "OOB_MIN",
    "OutOfBand",
    "buffer_views",
    "create",
    "drop_stream",
    "layout",
    "write",
    "write_at",
]

#: size from which a :class:`pickle.PickleBuffer` is kept out of band
OOB_MIN: Final = 1 << 16
#: bytes written between two calls of a writer's *check*
CHUNK: Final = 8 << 20
#: a stream at least this big has its pages freed once read, if buffers outlive it
_DROP_MIN: Final = 1 << 20
_ALIGN: Final = 64
_IOV_MAX: Final = 512


class OutOfBand:
    """A pickler's ``buffer_callback``: keeps big contiguous buffers apart.

    A buffer of :data:`OOB_MIN` bytes or more is kept in :attr:`buffers` (a flat
    view of its memory, not a copy) and pickled out of band; a smaller one, or a
    non-contiguous one, in band, as without a callback (the pickle is then the same).
    """

    __slots__ = ("buffers",)

    def __init__(self) -> None:
        self.buffers: list[memoryview] = []

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()
        except BufferError:  # not contiguous: in band (where pickle refuses it)
            return True
        if view.nbytes < OOB_MIN:
            return True
        self.buffers.append(view)
        return False


def _no_check() -> None:
    return None


def layout(stream_size: int, sizes: Sequence[int]) -> tuple[Table, int]:
    """The table of buffers of *sizes* after a stream, and the segment's size."""
    import mmap

    table = []
    end = stream_size
    align = mmap.PAGESIZE
    for size in sizes:
        offset = -(-end // align) * align
        table.append((offset, size))
        end = offset + size
        align = _ALIGN
    return tuple(table), end


def create(name: str = "aiointerp-segment") -> int:
    """A new empty file in memory, close-on-exec; its descriptor."""
    try:
        return os.memfd_create(name, os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd (macOS...)
        import tempfile

        fd, path = tempfile.mkstemp(prefix=f"{name}-")
        os.unlink(path)
        return fd


def write_at(
    fd: int, data: Any, offset: int, check: Callable[[], None] = _no_check
) -> int:
    """Write all of *data* (bytes-like) at *offset*; return the offset after it.

    ``os.pwrite`` copies without the GIL; *check* runs after every :data:`CHUNK`.
    """
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view[:CHUNK], offset)
        offset += done
        view = view[done:]
        check()
    return offset


def _write_pieces(
    fd: int, pieces: Sequence[Any], offset: int, check: Callable[[], None]
) -> int:
    """The pieces of a stream, one after the other; small ones in one ``pwritev``."""
    batch: list[Any] = []
    size = 0
    for piece in pieces:
        if len(piece) >= CHUNK:
            offset = _flush(fd, batch, size, offset, check)
            batch, size = [], 0
            offset = write_at(fd, piece, offset, check)
            continue
        batch.append(piece)
        size += len(piece)
        if size >= CHUNK or len(batch) >= _IOV_MAX:
            offset = _flush(fd, batch, size, offset, check)
            batch, size = [], 0
    return _flush(fd, batch, size, offset, check)


def _flush(
    fd: int, batch: list[Any], size: int, offset: int, check: Callable[[], None]
) -> int:
    if not batch:
        return offset
    done = os.pwritev(fd, batch, offset)
    if done < size:  # a file in memory writes it all; another file may not
        rest = memoryview(b"".join(batch))[done:]
        write_at(fd, rest, offset + done)
    check()
    return offset + size


def write(
    pieces: Sequence[Any],
    buffers: Sequence[memoryview],
    check: Callable[[], None] = _no_check,
) -> tuple[int, int, Table]:
    """A new segment: a stream made of *pieces*, then *buffers* (flat views).

    Returns ``(fd, stream_size, table)``; the caller closes *fd*. *check* runs
    after every :data:`CHUNK` written: what it raises abandons the segment.
    """
    stream_size = sum(len(piece) for piece in pieces)
    table, end = layout(stream_size, [buffer.nbytes for buffer in buffers])
    fd = create()
    try:
        os.ftruncate(fd, end)
        _write_pieces(fd, pieces, 0, check)
        for (offset, _), buffer in zip(table, buffers, strict=True):
            write_at(fd, buffer, offset, check)
    except BaseException:
        os.close(fd)
        raise
    return fd, stream_size, table


def buffer_views(fd: int, table: Table) -> list[memoryview]:
    """Views of a segment's out-of-band buffers, mapped shared and writable.

    One mapping for all of them, its page tables filled at once (``MAP_POPULATE``,
    without the GIL); it is unmapped when the last view of it is gone. It holds no
    descriptor (``trackfd=False``): results kept by the thousand use none.
    """
    import mmap

    start = table[0][0]
    end = table[-1][0] + table[-1][1]
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    mapping = mmap.mmap(fd, end - start, flags=flags, offset=start, trackfd=False)
    whole = memoryview(mapping)
    return [whole[offset - start : offset - start + size] for offset, size in table]


def drop_stream(fd: int, table: Table) -> None:
    """Free the pages of a segment's stream once it was read; its buffers stay.

    Only for a big stream (a small one is not worth the calls), and where the
    kernel can (``MADV_REMOVE``); otherwise they go with the segment.
    """
    if not table or table[0][0] < _DROP_MIN:
        return
    import mmap

    try:
        mapping = mmap.mmap(fd, table[0][0], flags=mmap.MAP_SHARED, trackfd=False)
    except (OSError, ValueError):  # no memory for the mapping: the pages stay
        return
    try:
        mapping.madvise(mmap.MADV_REMOVE)
    except (AttributeError, OSError):  # not Linux
        pass
    finally:
        mapping.close()
