"""``forward_output``: what workers write to sys.stdout/sys.stderr reaches the host's.

Real interpreters and real child processes on every event loop; the host side is
observed through pytest's ``capsys`` (which replaces ``sys.stdout`` and
``sys.stderr``), :func:`contextlib.redirect_stdout` and ``capfd`` (file descriptors
1 and 2, where the output goes with ``forward_output=False``). A real notebook
kernel is in tests/inside/test_interactive.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

import _funcs_output as funcs
import anyio
import anyio.lowlevel
import pytest
from _handshake import fifo, wait_byte

from aiointerp import InterpreterExecutor, InterpreterPool
from aiointerp._kinds import _backends, _forwarded, _relay
from aiointerp._wire import _logitems

pytestmark = pytest.mark.anyio

KINDS = pytest.mark.parametrize("kind", ["interpreter", "process"])


@KINDS
async def test_print_reaches_capsys_before_the_result(
    capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    async with InterpreterPool(1, kind=kind) as pool:
        assert await pool.run_sync(funcs.hello, "ada") == "ADA"
        # written before the result was returned, not when the pool closes
        first = capsys.readouterr()
        assert await pool.run_sync(funcs.hello, "bob") == "BOB"
        second = capsys.readouterr()
    assert (first.out, first.err) == ("hello ada\n", "to stderr ada\n")
    assert (second.out, second.err) == ("hello bob\n", "to stderr bob\n")


@KINDS
async def test_output_goes_to_the_current_stdout(kind: str) -> None:
    async with InterpreterPool(1, kind=kind) as pool:
        first, second = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(first):
            await pool.run_sync(funcs.hello, "one")
        with contextlib.redirect_stdout(second), contextlib.redirect_stderr(second):
            await pool.run_sync(funcs.hello, "two")
    assert first.getvalue() == "hello one\n"
    assert second.getvalue() == "hello two\nto stderr two\n"


@KINDS
async def test_a_partial_line_is_written_before_the_result(
    capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    async with InterpreterPool(1, kind=kind) as pool:
        assert await pool.run_sync(funcs.partial, "no newline") == 10
        assert capsys.readouterr().out == "no newline"
        await pool.run_sync(funcs.partial, " and more")
        assert capsys.readouterr().out == " and more"


@KINDS
async def test_stdout_and_stderr_keep_their_order(kind: str) -> None:
    both = io.StringIO()
    async with InterpreterPool(1, kind=kind) as pool:
        with contextlib.redirect_stdout(both), contextlib.redirect_stderr(both):
            await pool.run_sync(funcs.interleaved, 50)
    expected = "".join(f"out {i} err {i}\nend\n" for i in range(50))
    assert both.getvalue() == expected


@KINDS
async def test_prints_of_threads_the_call_started(
    capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    async with InterpreterPool(1, kind=kind) as pool:
        total = await pool.run_sync(funcs.from_threads, 4, 200)
        out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == total == 800
    for n in range(4):  # whole lines, each thread's in its own order
        mine = [line for line in lines if line.startswith(f"thread {n} ")]
        assert mine == [f"thread {n} line {i}" for i in range(200)]


@KINDS
async def test_big_output_arrives_whole(
    capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    lines, blob = 20_000, 3 * 1024 * 1024
    async with InterpreterPool(1, kind=kind) as pool:
        await pool.run_sync(funcs.big, lines, blob)
        out = capsys.readouterr().out
    expected = "".join(f"line {i:06d}\n" for i in range(lines)) + "x" * blob + "\n"
    assert len(out) == len(expected)
    assert out == expected


class _Recorder(io.StringIO):
    """A stream that remembers what was written when it was flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())
        super().flush()


@KINDS
async def test_a_flush_in_the_worker_flushes_the_host_stream(kind: str) -> None:
    recorder = _Recorder()
    async with InterpreterPool(1, kind=kind) as pool:
        with contextlib.redirect_stdout(recorder):
            await pool.run_sync(funcs.flushes, "progress 1")
            await pool.run_sync(funcs.partial, " quiet")
            await pool.run_sync(funcs.flushes, " progress 2")
    assert recorder.getvalue() == "progress 1 quiet progress 2"
    assert recorder.flushed == ["progress 1", "progress 1 quiet progress 2"]


@KINDS
async def test_what_code_sees_of_its_streams(kind: str) -> None:
    async with InterpreterPool(1, kind=kind) as pool:
        facts = await pool.run_sync(funcs.stream_facts)
    fileno_out, fileno_err, isatty, writable, encoding, refused, same = facts
    assert (fileno_out, fileno_err) == (1, 2)  # for faulthandler, subprocess...
    assert (isatty, writable, encoding, same) == (False, True, "utf-8", False)
    assert refused == "write() argument must be str, not bytes"


@KINDS
async def test_output_of_the_initializer(
    capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    async with InterpreterPool(
        1, kind=kind, initializer=funcs.say_in_initializer
    ) as pool:
        await pool.run_sync(funcs.partial, "; call")
        assert capsys.readouterr().out == "initializer ran; call"


@KINDS
async def test_without_log_forwarding(
    capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    async with InterpreterPool(1, kind=kind, forward_logging=False) as pool:
        await pool.run_sync(funcs.hello, "solo")
        assert capsys.readouterr().out == "hello solo\n"
        await pool.run_sync(funcs.log_unconfigured, "a record on stderr")
        assert capsys.readouterr().err == "a record on stderr\n"


@KINDS
async def test_forward_output_false_writes_to_the_file_descriptors(
    capfd: pytest.CaptureFixture[str], kind: str
) -> None:
    async with InterpreterPool(1, kind=kind, forward_output=False) as pool:
        with contextlib.redirect_stdout(io.StringIO()) as redirected:
            await pool.run_sync(funcs.hello, "fd")
    # the worker's own streams: flushed when the worker ended, bypassing sys.stdout
    assert redirected.getvalue() == ""
    captured = capfd.readouterr()
    assert "hello fd\n" in captured.out
    assert "to stderr fd\n" in captured.err


async def test_a_failing_host_stream_does_not_stop_the_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("the host's stream failed")

    async with InterpreterPool(1) as pool:
        with contextlib.redirect_stdout(Broken()):
            assert await pool.run_sync(funcs.hello, "lost") == "LOST"
        assert await pool.run_sync(funcs.hello, "kept") == "KEPT"
    captured = capsys.readouterr()
    assert captured.out == "hello kept\n"
    assert "OSError: the host's stream failed" in captured.err
    assert "to stderr lost\n" in captured.err


async def test_host_stdout_none_drops_the_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with InterpreterPool(1) as pool:
        monkeypatch.setattr(sys, "stdout", None)
        assert await pool.run_sync(funcs.hello, "nowhere") == "NOWHERE"


def test_executor_forwards_output(capsys: pytest.CaptureFixture[str]) -> None:
    with InterpreterExecutor(1) as executor:
        assert executor.submit(funcs.hello, "sync").result() == "SYNC"
        # written by the executor's event loop thread before the future resolved
        captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("hello sync\n", "to stderr sync\n")
    with InterpreterExecutor(1, forward_output=False) as executor:
        executor.submit(funcs.hello, "off").result()
    assert capsys.readouterr().out == ""


def test_an_item_of_a_destroyed_interpreter_is_skipped() -> None:
    # a queue item whose interpreter is gone comes back as None on 3.13 (UNBOUND on
    # 3.14): never an item to handle
    _forwarded.handle(None, 1)


# -- output flooded between calls -----------------------------------------------------

#: lines flood() prints between calls: 4.2 MB of text, which an interpreter's queue
#: holds in about 35 MB; for a process, more than its pipe and the host's read-ahead
FLOOD_LINES = {"interpreter": 60_000, "process": 10_000}


def _rss() -> int:
    """This process's resident memory (bytes)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@KINDS
async def test_output_flooded_between_calls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    """A thread a call left running prints lines after the call returned.

    An interpreter worker keeps what fits in its budget and drops the rest, which
    the next call reports first; a process worker's thread waits for the host, as
    for a terminal, and loses nothing. The next call returns its own result and
    output; the pool closes.
    """
    lines = FLOOD_LINES[kind]
    with (
        fifo(tmp_path / "go") as (go, go_fd),
        fifo(tmp_path / "done") as (done, done_fd),
    ):
        async with InterpreterPool(1, kind=kind) as pool:
            await pool.run_sync(funcs.flood, lines, go, done)
            before = _rss()
            os.write(go_fd, b"g")  # the call has returned: between calls from here
            if kind == "interpreter":  # nothing blocks its writer: it ends
                await wait_byte(done_fd)
                grown = _rss() - before
            assert await pool.run_sync(funcs.join_flood, "next") == "NEXT"
            captured = capsys.readouterr()
    *flood, last = captured.out.splitlines(keepends=True)
    assert last == "joined next\n"  # the call's own output, after the backlog
    expected = [funcs.FLOOD_LINE.format(i) for i in range(lines)]
    if kind == "process":
        assert flood == expected
        assert captured.err == ""
        return
    line = len(expected[0])
    assert flood == expected[: len(flood)]  # the first ones, whole, in order
    assert 0 < len(flood) * line <= _logitems.IDLE_BUDGET
    note = re.fullmatch(
        r"\[aiointerp: (\d+) characters of output from interpreter worker \d+ "
        r"dropped: written between calls, .*\]\n",
        captured.err,
    )
    assert note is not None, captured.err
    assert int(note[1]) == (lines - len(flood)) * line  # counted exactly
    assert grown < 16 * 2**20, grown  # queued as they were: 35 MB


async def test_output_dropped_before_the_pool_closes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No call comes after the flood: the pool's close reports what was dropped."""
    lines = 40_000  # 2.8 MB of text: more than the budget
    with (
        fifo(tmp_path / "go") as (go, go_fd),
        fifo(tmp_path / "done") as (done, done_fd),
    ):
        async with InterpreterPool(1) as pool:
            await pool.run_sync(funcs.flood, lines, go, done)
            os.write(go_fd, b"g")
            await wait_byte(done_fd)
        captured = capsys.readouterr()
    kept = captured.out.count("flood ")
    assert 0 < kept < lines
    dropped = (lines - kept) * len(funcs.FLOOD_LINE.format(0))
    assert captured.err.startswith(f"[aiointerp: {dropped} characters of output ")


@KINDS
async def test_a_backlog_is_handed_over_in_slices(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    """What was written between calls reaches the host's stream during the next
    call in slices, the event loop getting turns between them (here after every
    slice: FORWARD_SLICE 0); so a backlog never stalls it."""
    monkeypatch.setattr(_relay, "FORWARD_SLICE", 0.0)
    turns = 0
    seen: list[int] = []  # the loop's turns, at each line written

    class Sink(io.StringIO):
        def write(self, text: str) -> int:
            seen.append(turns)
            return super().write(text)

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    lines = 1000
    with (
        fifo(tmp_path / "go") as (go, go_fd),
        fifo(tmp_path / "done") as (done, done_fd),
    ):
        async with InterpreterPool(1, kind=kind) as pool:
            await pool.run_sync(funcs.flood, lines, go, done)
            os.write(go_fd, b"g")
            if kind == "interpreter":
                await wait_byte(done_fd)
            sink = Sink()
            with contextlib.redirect_stdout(sink):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(count_turns)
                    await pool.run_sync(funcs.join_flood, "next")
                    tg.cancel_scope.cancel()
    assert sink.getvalue().count("flood ") == lines
    assert len(set(seen[:lines])) > 1  # the loop had turns while they were written


async def test_the_asyncio_reader_reads_ahead_no_further_than_read_ahead() -> None:
    """Host side: a process worker's done pipe is read ahead of its consumer (on
    asyncio, by a reader the loop calls whenever the pipe is readable) by
    READ_AHEAD at most; the rest waits in the pipe (and then the worker's writer).
    Every frame still arrives, in order. (trio's reader reads only when asked.)"""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    try:
        reader = _backends.frame_reader(read_fd)
        sent = 0
        for _ in range(64):  # 64 pipefuls (4 MiB), each offered to the loop
            while True:
                payload = sent.to_bytes(8, "little") + bytes(992)
                try:  # a write of less than PIPE_BUF: all of it, or none
                    os.write(
                        write_fd, b"L" + len(payload).to_bytes(4, "little") + payload
                    )
                except BlockingIOError:
                    break
                sent += 1
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
        assert len(reader._buffer) <= _backends.READ_AHEAD + _backends._CHUNK
        os.close(write_fd)
        write_fd = -1
        for i in range(sent):
            assert await reader.read() == b"L"
            assert reader.payload is not None
            assert int.from_bytes(reader.payload[:8], "little") == i
        assert await reader.read() == b""  # end of file
        reader.close()
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
