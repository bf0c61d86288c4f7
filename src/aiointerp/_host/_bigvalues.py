"""Host side of big values: encode a call and decode its result without stalling the loop.

The wire format and the worker side are in :mod:`aiointerp._wire._big`. Here:

* :func:`encode_call` sends small arguments as :func:`aiointerp._wire._encoding.encode_call`
  does (the same bytes, at about the same cost). It pickles on the event loop for
  at most :data:`LOOP_BUDGET`; a pickle that takes longer is made again in a
  thread. Big ``bytes``/``bytearray`` buffers are never copied by the host: they
  cross as views, the worker copies them; big :class:`pickle.PickleBuffer` objects
  (numpy arrays' data) cross out of band, as views too.
* :func:`decode_result` unpickles a result sent in a file in a thread; its
  out-of-band buffers are mapped, not copied.

Such a thread hands the event loop a turn every :data:`SLICE`, and stops when its
caller is cancelled.

While a big argument is being pickled, other tasks run: an argument they modify
meanwhile is sent in an unspecified state (as with any thread pool); a ``bytearray``
argument of 64 KiB or more is read by the worker while the call runs, and cannot be
resized until it returns.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from .._wire import _big, _encoding, _outcomes, _pieces, _protocol, _segments
from .._wire._errors import BrokenWorkerError

__all__ = ["LOOP_BUDGET", "SLICE", "decode_result", "encode_call"]

#: seconds of pickling on the event loop after which the pickle is made in a thread
LOOP_BUDGET: Final = 0.0005
#: seconds of GIL-holding work in a thread between two turns given to the loop
SLICE: Final = 0.0005
#: bytes of a pickle scanned for "__main__" on the loop; more is scanned in a thread
_SCAN_ON_LOOP: Final = 1 << 20
_SCAN_CHUNK: Final = 1 << 20
#: threads that pickle at once per event loop: they share one GIL, more do not help
_THREADS: Final = 4
_MAIN: Final = b"__main__"

_limiter: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar(
    "aiointerp_bigvalues_limiter"
)


# -- encoding a call

type _Dumped = tuple[list[_pieces.Piece], list[memoryview]]
"""A pickle's pieces, and its out-of-band buffers."""


async def encode_call(
    func: object, args: tuple[Any, ...], to: str = _encoding.RECIPIENT["interpreter"]
) -> tuple[bytes, int, Any]:
    """Serialise a call, before any worker is taken: ``(func_blob, args_mode, payload)``.

    As :func:`aiointerp._wire._encoding.encode_call`, with two more modes for
    arguments whose pickle is big: :data:`~aiointerp._wire._protocol.FRAMES`, and
    :data:`~aiointerp._wire._protocol.BUFFERS` when the pickle has big out-of-band buffers
    (the data of numpy arrays: :class:`aiointerp._wire._segments.OutOfBand`).

    :raises NotShareableError: ``func`` or an argument cannot be pickled
    """
    func_blob = _encoding.dumps(func, f"function {_encoding.describe(func)}", to)
    kind = _big.classify(args)
    if kind == _big.SMALL:
        return func_blob, _protocol.SHARED, args
    what = f"the arguments of {_encoding.describe(func)}"
    dumped: _Dumped | None = None
    try:
        if kind == _big.OTHER:
            dumped = _dump_on_loop(args)
            if dumped is not None and len(dumped[0]) == 1 and not dumped[1]:
                blob = dumped[0][0]  # the common case, as before
                assert type(blob) is bytes  # a buffer comes between two frames
                if _MAIN not in blob or _encoding.main_spec() is not None:
                    return func_blob, _protocol.PICKLED, blob
        if dumped is None:  # bulky, or it took too long: again, in a thread
            dumped = await _in_thread(_dump_paced, args)
    except Exception:
        # the error (NotShareableError, with its hint) or cloudpickle, as before
        return func_blob, _protocol.PICKLED, _encoding.dumps(args, what, to)
    pieces, buffers = dumped
    return (func_blob, *await _finish(pieces, buffers, args, what, to))


async def _finish(
    pieces: list[_pieces.Piece],
    buffers: list[memoryview],
    args: tuple[Any, ...],
    what: str,
    to: str,
) -> tuple[int, Any]:
    """``(args_mode, payload)`` of a pickle made of *pieces* and *buffers*."""
    if len(pieces) == 1 and not buffers and type(blob := pieces[0]) is bytes:
        if _MAIN in blob and _encoding.main_spec() is None:  # sent as before
            if _encoding._names_main(blob):  # cloudpickle, or refused
                return _protocol.PICKLED, _encoding.dumps(args, what, to)
        return _protocol.PICKLED, blob
    if _encoding.main_spec() is None:  # workers cannot import __main__ again
        scanned = sum(len(p) for p in pieces if type(p) is bytes)
        if scanned < _SCAN_ON_LOOP:
            found = _mentions_main(pieces, _pieces.no_pace)
        else:
            found = await _in_thread(_mentions_main, pieces)
        if found:  # rare: let the full check decide, as for a small pickle
            return _protocol.PICKLED, _encoding.dumps(args, what, to)
    # views cross an interpreter's queue without a copy, and stay valid: the host's
    # interpreter outlives every worker (a process worker's link maps them instead)
    if buffers:
        return _protocol.BUFFERS, (tuple(pieces), tuple(buffers))
    return _big.FRAMES, tuple(pieces)


class _TooLong(Exception):
    """Pickling on the loop went past LOOP_BUDGET."""


class _LoopPickler(_pieces.PieceWriter):
    """A :class:`~aiointerp._wire._pieces.PieceWriter` that gives up after LOOP_BUDGET.

    One per thread, reused with its pickler: creating one costs more than a small
    dump.
    """

    __slots__ = ("busy", "deadline", "oob", "pickler")

    def __init__(self) -> None:
        super().__init__()
        self.oob = _segments.OutOfBand()
        self.pickler = pickle.Pickler(
            self, _encoding._PROTOCOL, buffer_callback=self.oob
        )
        self.deadline = 0.0
        self.busy = False

    def write(self, data: Any) -> None:
        if type(data) is bytes:  # a frame (or a big bytes): kept as it is
            self.pieces.append(data)
        else:
            _pieces.PieceWriter.write(self, data)  # a buffer: a view of it
        if time.perf_counter() > self.deadline:
            raise _TooLong

    def dump(self, args: tuple[Any, ...]) -> _Dumped | None:
        self.busy = True
        pieces = self.pieces = []
        buffers = self.oob.buffers = []
        self.deadline = time.perf_counter() + LOOP_BUDGET
        try:
            self.pickler.dump(args)
        except _TooLong:
            return None
        finally:
            self.pickler.clear_memo()
            self.pieces = []
            self.oob.buffers = []
            self.busy = False
        return pieces, buffers


_local = threading.local()


def _dump_on_loop(args: tuple[Any, ...]) -> _Dumped | None:
    """The pieces and buffers of the pickle of *args*, or ``None`` if it takes too long."""
    state: _LoopPickler | None = getattr(_local, "pickler", None)
    if state is None or state.busy:  # busy: a __reduce__ that sends a call...
        state = _LoopPickler()
        _local.pickler = state
    return state.dump(args)


def _dump_paced(args: tuple[Any, ...], pace: Callable[[], None]) -> _Dumped:
    writer = _pieces.PieceWriter(pace)
    oob = _segments.OutOfBand()
    pickle.Pickler(writer, _encoding._PROTOCOL, buffer_callback=oob).dump(args)
    return writer.pieces, oob.buffers


def _mentions_main(pieces: Sequence[_pieces.Piece], pace: Callable[[], None]) -> bool:
    """Does ``__main__`` occur in the pickle's bytes? (buffers' views are data only)"""
    tail = b""
    for piece in pieces:
        if type(piece) is not bytes:
            tail = b""
            continue
        if _MAIN in tail + piece[: len(_MAIN) - 1]:
            return True
        for start in range(0, len(piece), _SCAN_CHUNK):
            if piece.find(_MAIN, start, start + _SCAN_CHUNK + len(_MAIN) - 1) >= 0:
                return True
            pace()
        tail = piece[1 - len(_MAIN) :]
    return False


# -- decoding a result


async def decode_result(
    outcome: _encoding.Outcome, func: object, kind: str = "auto"
) -> Any:
    """Return the call's result or raise its exception, as the caller should see it.

    As :func:`aiointerp._wire._encoding.decode_outcome`, for results sent in a file too.
    Call it as soon as the outcome is received, before the worker serves another
    call (which closes the worker's result file).

    :raises BrokenWorkerError: the worker's result file is gone (its worker
        ended before the result was read)
    """
    status = outcome[1]
    if status == _protocol.OK_SHARED:
        return outcome[2]
    if status == _protocol.OK_PICKLED:
        if outcome[3] is not None:
            return await _load_file(outcome[2], outcome[3], func)
    return _outcomes.decode_outcome(outcome, func, kind)


async def _load_file(fd: int, meta: tuple[Any, ...], func: object) -> Any:
    size, inode = meta[:2]
    table: _segments.Table = meta[2] if len(meta) > 2 else ()
    length = table[-1][0] + table[-1][1] if table else size
    try:
        # duplicated before the first await, so before the worker can serve another
        # call and close its own: ours keeps the file for as long as we read it
        mine = os.dup(fd)
    except OSError:
        mine = -1
    try:
        stat = os.fstat(mine) if mine >= 0 else None
        if stat is None or (stat.st_ino, stat.st_size) != (inode, length):
            # closed when its interpreter ended (and the number maybe reused)
            raise BrokenWorkerError(
                f"the result of {_encoding.describe(func)} was lost: its worker "
                "ended before the result was read"
            )
        return await _in_thread(_load_paced, mine, size, table)
    finally:
        if mine >= 0:
            os.close(mine)  # cheap: the worker's descriptor still holds the file


def _load_paced(
    fd: int, size: int, table: _segments.Table, pace: Callable[[], None]
) -> Any:
    # out-of-band buffers are mapped, not copied: what the result keeps of them
    # (a numpy array's data) stays in the file's pages
    views = _segments.buffer_views(fd, table) if table else None
    try:
        reader = _pieces.FileReader(fd, size, pace)
        return pickle.Unpickler(reader, buffers=views).load()
    finally:
        del views
        # free the file's memory now, not at the worker's next call; here, as freeing
        # 100 MB of pages keeps the calling thread in the kernel for 10 to 20 ms
        with contextlib.suppress(OSError):
            if table:
                _segments.drop_stream(fd, table)  # the buffers' pages stay
            else:
                os.ftruncate(fd, 0)


# -- threads that share the GIL with the loop


def _get_limiter() -> anyio.CapacityLimiter:
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(_THREADS)
        _limiter.set(limiter)
        return limiter


async def _in_thread(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args, pace)`` in a thread; *pace* gives the loop its turns."""
    return await anyio.to_thread.run_sync(_paced, func, args, limiter=_get_limiter())


def _paced(func: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return func(*args, _Pacer().pace)


def _noop() -> None:
    return None


class _Pacer:
    """Called from a thread between frames: every SLICE, let the loop thread run."""

    # A thread alone would not help: CPython's C pickler holds the GIL for the whole
    # call (building 3 million ints, copying 100 MB), and the loop thread, once it
    # waits for the GIL, only gets it back when the pickler's thread reaches Python
    # code after a switch interval (5 ms). So the thread's work is cut in slices:
    # the pickle is read or written through a Python ``file`` object whose methods
    # run between frames, and there, every SLICE, the thread hands the loop a turn
    # (``from_thread.run_sync`` of a no-op: the thread blocks, the loop thread takes
    # the GIL at once and runs its ready tasks and timers). Copies of big buffers
    # are made in slices too, or by the kernel (``os.pread``) without the GIL.

    __slots__ = ("next",)

    def __init__(self) -> None:
        self.next = time.perf_counter() + SLICE

    def pace(self) -> None:
        if time.perf_counter() >= self.next:
            # blocks until the loop ran the no-op: meanwhile it holds the GIL
            anyio.from_thread.run_sync(_noop)
            anyio.from_thread.check_cancelled()  # the caller gave up: stop
            self.next = time.perf_counter() + SLICE
