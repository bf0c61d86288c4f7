"""Big values to and from process workers: through shared memory, never a pipe.

The transport is :mod:`aiointerp._kinds._pipelink` and :mod:`aiointerp._inside._ends`
(frames: :mod:`aiointerp._wire._frames`, segments: :mod:`aiointerp._wire._segments`).
Round trips run real child processes on every event loop and check that the values
come back identical (type, dtype, shape, order, writeability, content). The
structural tests check, without timing anything, that big messages never go
through the pipes, that a big segment is written off the event loop, and that
numpy arrays land in shared memory without a copy. Cancelling or killing a worker
while its arguments are being written leaves nothing behind (the ``no_leaks``
fixture checks the fds, memfds included, the threads and /dev/shm). How fast it all
is: ``python -m benchmarks.process_buffers``.
"""

from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _funcs_shm as funcs
import anyio
import anyio.to_thread
import pytest
from _handshake import HANG, wait_started
from conftest import child_env

from aiointerp import BrokenWorkerError, InterpreterPool
from aiointerp._inside import _ends
from aiointerp._kinds import _pipelink
from aiointerp._wire import _big, _frames, _pipes, _protocol, _segments

numpy = pytest.importorskip("numpy")

pytestmark = pytest.mark.anyio

MIB = 1 << 20
#: big enough for the writer thread (more than WRITE_ON_LOOP_MAX)
BIG = 4 * MIB


def _same(got: Any, expected: Any) -> None:
    """*got* is what pickle makes of *expected* (protocol 5): the same value."""
    _alike(got, pickle.loads(pickle.dumps(expected, 5)))


def _alike(got: Any, reference: Any) -> None:
    assert type(got) is type(reference)
    if isinstance(reference, dict):
        assert got.keys() == reference.keys()
        for key in reference:
            _alike(got[key], reference[key])
    elif isinstance(reference, numpy.ndarray):
        assert got.dtype == reference.dtype
        assert got.shape == reference.shape
        for flag in ("c_contiguous", "f_contiguous", "writeable"):
            assert getattr(got.flags, flag) == getattr(reference.flags, flag), flag
        assert numpy.array_equal(got, reference)
    else:
        assert got == reference


# -- round trips ----------------------------------------------------------------------


VALUES = [
    pytest.param(b"\x01\x02" * (2 * MIB), id="bytes"),
    pytest.param(bytearray(b"\x03" * BIG), id="bytearray"),
    pytest.param(numpy.arange(BIG // 8, dtype=numpy.float64), id="numpy"),
    pytest.param(
        numpy.asfortranarray(numpy.arange(BIG // 8, dtype=">i8").reshape(-1, 64)),
        id="numpy-fortran-big-endian",
    ),
    pytest.param(numpy.arange(BIG // 4, dtype=numpy.int64)[::2], id="numpy-strided"),
    pytest.param(
        {"a": numpy.ones(BIG // 8), "b": b"\x04" * MIB, "c": [1, 2], "d": "x" * MIB},
        id="dict-of-arrays-and-bytes",
    ),
    pytest.param(b"\x05" * 100_000, id="bytes-between-a-frame-and-a-thread"),
]


@pytest.mark.parametrize("value", VALUES)
async def test_big_values_round_trip_exactly(value: Any) -> None:
    async with InterpreterPool(1, kind="process") as pool:
        result = await pool.run_sync(funcs.echo, value)
        assert await pool.run_sync(funcs.pid) > 0  # the worker serves on
    _same(result, value)


async def test_readonly_arrays_stay_readonly() -> None:
    array = numpy.arange(BIG // 8)
    array.flags.writeable = False
    async with InterpreterPool(1, kind="process") as pool:
        seen = await pool.run_sync(funcs.describe, array)
        result = await pool.run_sync(funcs.echo, array)
    assert not seen["writeable"]
    assert seen["shared"]
    _same(result, array)
    assert not result.flags.writeable


async def test_big_results_of_every_kind_round_trip_exactly() -> None:
    n = MIB
    async with InterpreterPool(1, kind="process") as pool:
        result = await pool.run_sync(funcs.arrays, n)
        zeros = await pool.run_sync(funcs.zeros, BIG)
        zeros_bytearray = await pool.run_sync(funcs.zeros_bytearray, BIG)
        # the worker keeps no result file once the host has its descriptor
        assert await pool.run_sync(funcs.result_files) == 0
    _same(result, funcs.arrays(n))
    assert zeros == bytes(BIG)
    assert type(zeros_bytearray) is bytearray
    assert zeros_bytearray == bytearray(BIG)


async def test_a_memoryview_arrives_as_a_view_and_returns_as_bytes() -> None:
    data = bytes(range(256)) * (BIG // 256)
    async with InterpreterPool(1, kind="process") as pool:
        view = memoryview(data)
        assert await pool.run_sync(funcs.kind_and_size, view) == ("memoryview", BIG)
        result = await pool.run_sync(funcs.echo, view)
        # not contiguous: it goes as a copy
        strided = memoryview(bytearray(data))[::2]
        assert await pool.run_sync(funcs.kind_and_size, strided) == (
            "memoryview",
            BIG // 2,
        )
    assert type(result) is bytes
    assert result == data


async def test_changes_in_the_worker_do_not_reach_the_caller() -> None:
    buffer = bytearray(b"\x05" * BIG)
    array = numpy.zeros(BIG // 8)
    async with InterpreterPool(1, kind="process") as pool:
        changed = await pool.run_sync(funcs.add_one, array)
        assert await pool.run_sync(funcs.kind_and_size, buffer) == ("bytearray", BIG)
    assert not array.any()  # the caller's array is as it was
    assert (changed == 1).all()
    assert changed.flags.writeable
    buffer.append(1)  # no export left behind: it can be resized


# -- where the bytes go -----------------------------------------------------------------


async def test_numpy_arrays_cross_without_a_copy() -> None:
    array = numpy.arange(BIG // 8, dtype=numpy.float64)
    async with InterpreterPool(1, kind="process") as pool:
        seen = await pool.run_sync(funcs.describe, array)
        result = await pool.run_sync(funcs.echo, array)
    assert seen["shared"]  # the worker's array is over the segment's pages
    assert seen["sum"] == float(array.sum())
    assert funcs.in_shared_memory(result)  # and so is the caller's result
    assert funcs.result_files() == 0  # a mapping holds no descriptor
    _same(result, array)


async def test_big_messages_never_go_through_the_pipes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written: list[int] = []
    taken: list[int] = []
    write_all = _pipes.write_all
    take = _pipelink.PipeLink.take

    def record_write(fd: int, data: bytes) -> None:
        written.append(len(data))
        write_all(fd, data)

    def record_take(self: _pipelink.PipeLink) -> Any:
        assert self._reader is not None
        taken.append(len(self._reader.payload or b""))
        return take(self)

    monkeypatch.setattr(_pipes, "write_all", record_write)
    monkeypatch.setattr(_pipelink.PipeLink, "take", record_take)
    async with InterpreterPool(1, kind="process") as pool:
        for value in (numpy.ones(BIG // 8), b"\x06" * BIG, bytearray(BIG), [1] * MIB):
            _same(await pool.run_sync(funcs.echo, value), value)
    limit = _frames.INLINE_MAX + 5  # a frame's header
    assert written
    assert max(written) <= limit
    assert max(taken) <= limit


async def test_a_big_segment_is_written_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[tuple[int, int]] = []
    write = _segments.write

    def record(*args: Any) -> Any:
        fd, size, table = write(*args)
        threads.append((threading.get_ident(), size + sum(n for _, n in table)))
        return fd, size, table

    monkeypatch.setattr(_segments, "write", record)
    loop_thread = threading.get_ident()
    async with InterpreterPool(1, kind="process") as pool:
        await pool.run_sync(funcs.size, b"\x01" * BIG)
        await pool.run_sync(funcs.size, b"\x01" * 100_000)
    (big_thread, big_size), (small_thread, small_size) = threads
    assert big_size > _pipelink.WRITE_ON_LOOP_MAX
    assert big_thread != loop_thread
    assert small_size <= _pipelink.WRITE_ON_LOOP_MAX
    assert small_thread == loop_thread


# -- cancellation and deaths --------------------------------------------------------------


class _Paused:
    """Pauses the writer of a segment after its first chunk, until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writing = threading.Event()
        self.release = threading.Event()
        self.raised: list[str] = []
        write = _segments.write

        def paused_write(
            pieces: Any, buffers: Any, check: Callable[[], None] = lambda: None
        ) -> Any:
            def pause() -> None:
                self.writing.set()
                assert self.release.wait(HANG)
                check()

            try:
                return write(pieces, buffers, pause)
            except BaseException as exc:
                self.raised.append(type(exc).__name__)
                raise

        monkeypatch.setattr(_segments, "write", paused_write)

    async def wait_writing(self) -> None:
        assert await anyio.to_thread.run_sync(self.writing.wait, HANG)


async def test_cancel_while_the_arguments_are_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paused = _Paused(monkeypatch)
    cancel = _pipelink.PipeLink.cancel

    def cancel_then_release(self: _pipelink.PipeLink, job_id: int) -> None:
        cancel(self, job_id)
        paused.release.set()  # the writer checks again: the job is abandoned

    monkeypatch.setattr(_pipelink.PipeLink, "cancel", cancel_then_release)
    trace = tmp_path / "ran"
    async with InterpreterPool(1, kind="process") as pool:
        await pool.run_sync(funcs.pid)
        with anyio.CancelScope() as scope:

            async def cancel_when_writing() -> None:
                await paused.wait_writing()
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_when_writing)
                await pool.run_sync(funcs.touch_then_size, str(trace), b"\x01" * BIG)
        assert scope.cancelled_caught
        assert paused.raised == ["Abandoned"]  # written no further
        assert not trace.exists()  # the code never ran
        stats = pool.stats()
        assert (stats.cancelled, stats.abandoned) == (1, 0)  # not killed
        assert await pool.run_sync(funcs.size, b"\x02" * 10) == 10


async def test_arguments_that_cannot_be_written_fail_their_call_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_memory(name: str = "") -> int:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    async with InterpreterPool(1, kind="process") as pool:
        pid = await pool.run_sync(funcs.pid)
        monkeypatch.setattr(_segments, "create", no_memory)  # the host's only
        with pytest.raises(RuntimeError, match="could not send the arguments: OSError"):
            await pool.run_sync(funcs.size, b"\x01" * BIG)
        monkeypatch.undo()
        assert await pool.run_sync(funcs.pid) == pid  # the worker serves on


class _PausedAfterTheDescriptor(_Paused):
    """Pauses the writer of a segment once its descriptor was sent, before its frame."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writing = threading.Event()
        self.release = threading.Event()
        self.raised: list[str] = []
        send_fd = _pipes.send_fd

        def paused_send_fd(sock: Any, fd: int, tag: int) -> None:
            send_fd(sock, fd, tag)
            self.writing.set()
            assert self.release.wait(HANG)

        monkeypatch.setattr(_pipes, "send_fd", paused_send_fd)


@pytest.mark.parametrize(
    "pause",
    [
        pytest.param(_Paused, id="segment-written"),
        pytest.param(_PausedAfterTheDescriptor, id="descriptor-sent"),
    ],
)
async def test_worker_killed_while_its_arguments_are_sent(
    pause: type[_Paused], monkeypatch: pytest.MonkeyPatch
) -> None:
    paused = pause(monkeypatch)
    async with InterpreterPool(1, kind="process") as pool:
        pid = await pool.run_sync(funcs.pid)

        async def kill_when_writing() -> None:
            await paused.wait_writing()
            os.kill(pid, signal.SIGKILL)
            # released once the call failed: the writer finds the worker gone
            await failed.wait()
            paused.release.set()

        failed = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_when_writing)
            with pytest.raises(BrokenWorkerError, match="SIGKILL"):
                await pool.run_sync(funcs.size, numpy.ones(BIG // 8))
            failed.set()
        assert await pool.run_sync(funcs.pid) != pid  # replaced, the pool serves on


async def test_worker_killed_while_it_holds_arguments_in_shared_memory() -> None:
    async with InterpreterPool(1, kind="process") as pool:
        with pytest.raises(BrokenWorkerError, match="SIGKILL"):
            await pool.run_sync(funcs.kill_self, numpy.ones(BIG // 8))
        result = await pool.run_sync(funcs.echo, numpy.ones(BIG // 8))
    assert (result == 1).all()


@contextmanager
def fifo(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A FIFO for handshakes: its path for the worker, a non-blocking fd for the test."""
    path = tmp_path / "handshake"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # never at EOF: we hold a writer
    try:
        yield str(path), fd
    finally:
        os.close(fd)


async def test_a_big_result_nobody_waits_for_is_freed(tmp_path: Path) -> None:
    """The caller is gone when the big result comes: the outcome is dropped, and
    the result file's descriptor with it."""
    async with InterpreterPool(1, kind="process", cancel_grace=HANG) as pool:
        with fifo(tmp_path) as (name, fd), anyio.CancelScope() as scope:

            async def cancel() -> None:
                await wait_started(fd)
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel)
                await pool.run_sync(funcs.spin_then_zeros, name, BIG)
        assert scope.cancelled_caught
        assert pool.stats().cancelled == 1
        assert funcs.result_files() == 0  # gone with the outcome, the pool still open
        assert await pool.run_sync(funcs.size, b"\x01" * BIG) == BIG


def test_classes_of_a_main_script_with_out_of_band_buffers() -> None:
    """The worker meets ``__main__`` in arguments with buffers: it loads the script,
    then unpickles them again, buffers included (interpreters copy them)."""
    scripts = Path(__file__).parents[1] / "scripts"
    process = subprocess.run(
        [sys.executable, "main_buffers.py"],
        cwd=scripts,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=100,  # hang guard
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.splitlines() == [
        "interpreter bytearray 1048576 True",  # the worker's copy of the buffer
        "process bytes 1048576 True",  # a view of the segment, sent back as bytes
        "numpy ndarray (131072,) 131072.0",
    ]


# -- the pieces -----------------------------------------------------------------------


def test_messages_sent_while_a_segment_is_written_keep_their_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A link and a channel face to face: what follows a big job waits for it."""
    paused = _Paused(monkeypatch)
    link = _pipelink.PipeLink()
    job_r, done_w, cancel_r, cancel_w, _, sock = link.child_fds
    channel = _ends.PipeChannel(job_r, done_w, cancel_r, cancel_w, sock)
    try:
        job = (7, None, b"func", _protocol.SHARED, (b"\x01" * BIG,))
        link.send(_protocol.JOB, job)  # to the writer thread, which pauses
        assert paused.writing.wait(HANG)
        link.send(_protocol.LEVELS, ("levels",))
        link.send(_protocol.QUIT)
        paused.release.set()
        assert channel.receive() == (_protocol.JOB, job)
        assert channel.receive() == (_protocol.LEVELS, ("levels",))
        assert channel.receive() == (_protocol.QUIT, None)
    finally:
        if channel._sock is not None:
            channel._sock.detach()  # the link closes the child's ends
        link.close()


def test_an_abandoned_job_does_not_run() -> None:
    from aiointerp.worker import Interrupted

    with pytest.raises(Interrupted, match="cancelled before its arguments"):
        _big.decode_args(_protocol.ABANDONED, None)
    with pytest.raises(RuntimeError, match="could not send the arguments: OSError"):
        _big.decode_args(_protocol.ABANDONED, "OSError: no memory")


def test_a_segment_maps_its_buffers() -> None:
    array = numpy.arange(MIB, dtype=numpy.int16)
    message = _frames.frame(b"J", (b"x" * 3 * MIB, array))
    assert isinstance(message, _frames.Segment)
    assert len(message.buffers) == 1
    fd, size, table = _segments.write(message.pieces, message.buffers)
    assert table[0][0] % 4096 == 0  # at a page boundary
    assert os.fstat(fd).st_size == table[0][0] + array.nbytes
    data, got = _pipes.load_segment(fd, size, table)
    assert data == b"x" * 3 * MIB
    assert funcs.in_shared_memory(got)
    _same(got, array)
