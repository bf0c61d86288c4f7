"""The wire format of big values: what keeps them from stalling the host's event loop.

Stdlib only: used on both sides (the host half that needs anyio is
:mod:`aiointerp._host._bigvalues`). Small values cross as :mod:`aiointerp._wire._encoding`
sends them. Big ones would cost the event-loop thread a long C call that holds the
GIL: pickling a 100 MB ``bytearray`` (two copies), unpickling 3 million ints, or the
queue's own copy of a 15 MB pickle when the host takes an outcome (``get`` copies
``bytes`` into the receiving interpreter: 12 ms for 15 MB). So:

* Arguments (host to worker). A tuple of shareable values with more than
  :data:`SHARED_ITEMS_MAX` items is not walked nor sent as it is (both cost the loop
  per item): it is pickled. Arguments are pickled on the loop while that takes under
  :data:`~aiointerp._host._bigvalues.LOOP_BUDGET`; a pickle that grows further is started
  again in a thread that hands the loop a turn every
  :data:`~aiointerp._host._bigvalues.SLICE` (see :mod:`aiointerp._host._bigvalues`). The pickle
  reaches :class:`PieceWriter` in *pieces*: its frames, and every ``bytes`` or
  ``bytearray`` of 64 KiB or more by reference (the C pickler hands those to
  ``write()`` as they are). They travel as :data:`FRAMES`: a
  tuple of ``bytes`` and ``memoryview`` (zero-copy across the queue; the host's
  interpreter outlives every worker); the worker unpickles them with
  :class:`PieceReader`, and so makes its own copy of each buffer, under its own GIL.
  The big :class:`pickle.PickleBuffer` objects (numpy arrays' data) are pickled out
  of band (:class:`aiointerp._wire._segments.OutOfBand`) and travel apart, as views too,
  as ``BUFFERS``: the worker copies each into a ``bytearray`` and unpickles with
  them (``buffers=``). A process worker's link sends them through shared memory
  and makes that ``MAPPED``: the worker unpickles with the mapped buffers as they
  are, and its arrays are over the shared pages (:mod:`aiointerp._wire._frames`).
* Results (worker to host). A result whose pickle reaches :data:`SPILL_MIN` bytes,
  or a shareable one with more than :data:`SHARED_ITEMS_MAX` items or
  :data:`SHARED_BYTES_MAX` bytes of ``str``/``bytes``, is pickled into a file in
  memory (``memfd``; a deleted temporary file where there is none), and the outcome
  carries the file's descriptor: ``(job_id, OK_PICKLED, fd, (size, inode), False)``
  instead of ``(job_id, OK_PICKLED, blob, None, False)``. The host duplicates the
  descriptor at once (:func:`aiointerp._host._bigvalues.decode_result`: before it awaits
  anything, so before the worker can serve another call) and unpickles from it with
  :class:`FileReader` in a thread: ``os.pread`` copies without the GIL. The worker
  closes its descriptor when it serves its next call, or when its interpreter ends
  (a process worker as soon as its descriptor crossed to the host: :func:`sent`).
  Big out-of-band buffers follow the stream in the file, laid out as a segment's
  (:mod:`aiointerp._wire._segments`), and the outcome's ``(size, inode)`` becomes
  ``(size, inode, table)``: the host maps them, and a numpy array result is over
  the file's pages, without a copy.

Descriptors are process-wide, so the file outlives the worker's interpreter:
unlike a ``memoryview`` of a worker's memory, which would dangle once the worker is
destroyed.
"""

from __future__ import annotations

import os
import pickle

from . import _encoding, _protocol, _segments

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Final

    type Piece = bytes | memoryview

__all__ = [
    "BULKY",
    "FRAMES",
    "OTHER",
    "SHARED_BYTES_MAX",
    "SHARED_ITEMS_MAX",
    "SMALL",
    "SPILL_MIN",
    "FileReader",
    "PieceReader",
    "PieceWriter",
    "classify",
    "decode_args",
    "encode_result",
    "in_file",
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
#: bytes copied between two calls of ``pace`` when a buffer is read
READ_CHUNK: Final = 1 << 20

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


def _no_pace() -> None:
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

    def __init__(self, check: Callable[[], None] = _no_pace) -> None:
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

    def __init__(self, fd: int, size: int, pace: Callable[[], None] = _no_pace) -> None:
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
    data = os.pread(fd, len(chunk), pos)  # pragma: no cover - macOS < 11
    chunk[: len(data)] = data  # pragma: no cover
    return len(data)  # pragma: no cover


_HAVE_PREADV: Final = hasattr(os, "preadv")


# -- worker side


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
    if _result.fd >= 0:
        _result.close()
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
        return pickle.Unpickler(PieceReader(pieces), buffers=buffers).load()  # type: ignore[no-any-return]
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


def encode_result(
    job_id: int, value: object, to_file: bool = True
) -> _encoding.Outcome:
    """The outcome of a call that returned *value*; a big one is sent in a file.

    ``to_file=False`` where the host cannot open this worker's descriptors (another
    process), or for one item of a map batch: a big result is then one pickle.
    """
    if type(value) is memoryview:
        # a view into this interpreter's memory must not outlive it: send a copy
        value = value.tobytes()
    kind = classify(value, False, SHARED_ITEMS_MAX, SHARED_BYTES_MAX)
    if kind == SMALL:
        return (job_id, _protocol.OK_SHARED, value, None, False)
    if not to_file:
        return _encode_with_fallback(job_id, value)
    if kind == OTHER:  # most are small: one pickle, as before; a big one goes on
        outcome = _encode_other(job_id, value)  # to a file (one more copy)
        if isinstance(outcome, _SpillWriter):  # out-of-band buffers (numpy arrays...)
            return outcome.outcome(job_id)
        if outcome[1] == _protocol.OK_PICKLED and len(outcome[2]) >= SPILL_MIN:
            spill = _spill if not _spill.busy else _SpillWriter()
            spill.write(outcome[2])
            return spill.outcome(job_id)
        return outcome
    # bulky: streamed to the file, big buffers written from where they are
    spill = _spill if not _spill.busy else _SpillWriter()
    spill.busy = True
    try:
        spill.pickler.dump(value)
    except Exception:
        spill.discard()
        # cloudpickle for classes sent by value, or a clear UNSENDABLE
        outcome = _encode_with_fallback(job_id, value)
        if outcome[1] == _protocol.OK_PICKLED and len(outcome[2]) >= SPILL_MIN:
            spill.write(outcome[2])
            return spill.outcome(job_id)
        return outcome
    finally:
        spill.pickler.clear_memo()
    return spill.outcome(job_id)


def _encode_other(job_id: int, value: object) -> _encoding.Outcome | _SpillWriter:
    """One pickle, as before; or, with big out-of-band buffers, a file's writer."""
    oob = _segments.OutOfBand()
    try:
        blob = pickle.dumps(value, _encoding._PROTOCOL, buffer_callback=oob)
    except Exception:  # cloudpickle for classes sent by value, or UNSENDABLE
        return _encode_with_fallback(job_id, value)
    if not oob.buffers:  # the same pickle as without the callback
        return (job_id, _protocol.OK_PICKLED, blob, None, False)
    spill = _spill if not _spill.busy else _SpillWriter()
    spill.write(blob)
    spill.oob.buffers = oob.buffers
    return spill


def _encode_with_fallback(job_id: int, value: object) -> _encoding.Outcome:
    try:
        return (
            job_id,
            _protocol.OK_PICKLED,
            _encoding.dumps_result(value),
            None,
            False,
        )
    except Exception as error:
        why = f"{type(error).__name__}: {error}"
        return (
            job_id,
            _protocol.UNSENDABLE,
            (type(value).__qualname__, why),
            None,
            False,
        )


def in_file(outcome: _encoding.Outcome) -> bool:
    """Is *outcome* a result sent in a file (``a`` the descriptor, ``b`` its size)?"""
    return outcome[1] == _protocol.OK_PICKLED and outcome[3] is not None


def sent(fd: int) -> None:
    """The host holds a descriptor of the result file *fd* of its own now: close ours.

    For a process worker, once the descriptor crossed (:mod:`aiointerp._wire._frames`):
    a result the host maps is then freed as soon as the host drops it.
    """
    if _result.fd == fd:
        _result.close()


class _ResultFile:
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


_result = _ResultFile()


class _SpillWriter:
    """A result's pickle: kept in memory up to :data:`SPILL_MIN`, then in a file.

    Its big out-of-band buffers (:class:`aiointerp._wire._segments.OutOfBand`) go to the
    file after the stream, laid out as a segment's (:mod:`aiointerp._wire._segments`), and
    the outcome's ``(size, inode)`` gains their table: the host maps them. One is
    reused (with its pickler: creating one costs more than pickling a small result);
    :meth:`outcome` or :meth:`discard` make it ready for the next result.
    """

    __slots__ = ("busy", "fd", "oob", "pickler", "pieces", "size")

    def __init__(self) -> None:
        self.pieces: list[Any] = []
        self.size = 0
        self.fd = -1
        self.busy = False
        self.oob = _segments.OutOfBand()
        self.pickler = pickle.Pickler(
            self, _encoding._PROTOCOL, buffer_callback=self.oob
        )

    def write(self, data: Any) -> None:
        size = len(data) if type(data) is bytes else memoryview(data).nbytes
        self.size += size
        if self.fd >= 0:
            _write_all(self.fd, data)
            return
        self.pieces.append(data)
        if self.size >= SPILL_MIN:
            self.fd = _result.create()
            for piece in self.pieces:
                _write_all(self.fd, piece)
            self.pieces = []

    def discard(self) -> None:
        if self.fd >= 0:
            _result.close()
        self.reset()

    def reset(self) -> None:
        self.pieces = []
        self.size = 0
        self.fd = -1
        self.busy = False
        self.oob.buffers = []

    def outcome(self, job_id: int) -> _encoding.Outcome:
        fd, size, pieces, buffers = self.fd, self.size, self.pieces, self.oob.buffers
        self.reset()
        if fd < 0 and not buffers:
            blob = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            if type(blob) is not bytes:
                blob = bytes(blob)
            return (job_id, _protocol.OK_PICKLED, blob, None, False)
        if fd < 0:  # a small stream, and big buffers
            fd = _result.create()
            for piece in pieces:
                _write_all(fd, piece)
        if not buffers:
            inode = os.fstat(fd).st_ino
            return (job_id, _protocol.OK_PICKLED, fd, (size, inode), False)
        table, end = _segments.layout(size, [buffer.nbytes for buffer in buffers])
        os.ftruncate(fd, end)
        for (offset, _), buffer in zip(table, buffers, strict=True):
            _segments.write_at(fd, buffer, offset)
        inode = os.fstat(fd).st_ino
        return (job_id, _protocol.OK_PICKLED, fd, (size, inode, table), False)


_spill = _SpillWriter()


def _write_all(fd: int, data: Any) -> None:
    view = data.raw() if type(data) is pickle.PickleBuffer else memoryview(data)
    view = view.cast("B")
    while view:
        view = view[os.write(fd, view) :]
