"""``kind="process"``: calls, cancellation, kills and crashes with real child processes.

Handshakes go through a FIFO (tests/_funcs_process.py: the worker writes its pid
once the code runs); ``finally`` blocks write to a file. Timeouts only guard against
hangs, except where a timeout or ``cancel_grace`` is what is under test.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import _funcs_cancel
import _funcs_core
import _funcs_logging
import _funcs_process as funcs
import anyio
import pytest
from _handshake import HANG, LONG_GRACE, operator_events, text, wait_started
from conftest import child_env

from aiointerp import (
    BrokenWorkerError,
    InterpreterPool,
    NotShareableError,
    PoolClosedError,
    RemoteTraceback,
)
from aiointerp._inside._loop import _LOAD_NOTE
from aiointerp._kinds import _process
from aiointerp._kinds._config import worker_config
from aiointerp._kinds._interpreter import InterpreterWorker
from aiointerp._kinds._process import ProcessWorker
from aiointerp._kinds._worker import Worker

pytestmark = pytest.mark.anyio


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


def process_gone(pid: int) -> bool:
    """Has process *pid* exited? (a zombie nobody reaps, in a container, counts)"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


async def wait_gone(pid: int) -> None:
    with anyio.fail_after(HANG):
        while not process_gone(pid):  # noqa: ASYNC110 - /proc has no event to wait for
            await anyio.sleep(0.01)  # polling, under a hang guard


# -- the basics -----------------------------------------------------------------------


def test_kind_is_validated() -> None:
    with pytest.raises(ValueError, match="kind must be"):
        InterpreterPool(kind="thread")
    InterpreterPool(kind="auto")  # no worker exists before the first use


async def test_round_trip() -> None:
    async with InterpreterPool(2, kind="process") as pool:
        pid = await pool.run_sync(funcs.pid)
        assert pid != os.getpid()
        assert await pool.run_sync(_funcs_cancel.checksum, 1000, 7) == (
            _funcs_cancel.checksum(1000, 7)
        )
        assert await pool.run_sync(sorted, {3, 1, 2}) == [1, 2, 3]  # pickled args
        assert await pool.run_sync(bytes, memoryview(b"abc")) == b"abc"  # a view
        big = b"x" * 5_000_000  # more than a pipe holds, both ways
        assert await pool.run_sync(bytes, big) == big
        # what isolated subinterpreters refuse loads in a process
        assert await pool.run_sync(funcs.load_single_phase) == "_testsinglephase"
        with pytest.raises(ValueError, match="boom") as info:
            await pool.run_sync(funcs.fail, "boom")
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "in fail" in str(cause)
        assert "ValueError: boom" in str(cause)
        stats = pool.stats()
        assert (stats.completed, stats.failed) == (6, 1)


async def test_initializer() -> None:
    async with InterpreterPool(
        1, kind="process", initializer=funcs.set_value, initargs=("ready",)
    ) as pool:
        assert await pool.run_sync(funcs.get_value) == "ready"


async def test_initializer_failure() -> None:
    pool = InterpreterPool(1, kind="process", initializer=funcs.fail, initargs=("no",))
    with pytest.raises(BrokenWorkerError, match="initializer raised ValueError"):
        async with pool:  # it opens only once a worker started
            pass


async def test_logging_forwarded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "aiointerp_tests.worker")
    async with InterpreterPool(1, kind="process") as pool:
        pid = await pool.run_sync(funcs.pid)
        await pool.run_sync(_funcs_logging.log_one, logging.WARNING, "hello", 5)
        assert await pool.run_sync(_funcs_logging.log_many, 500) == 500
    records = [r for r in caplog.records if r.name == "aiointerp_tests.worker"]
    assert records[0].getMessage() == "hello 5"
    assert records[0].interpreter == pid  # type: ignore[attr-defined]
    assert records[0].order_id == 5  # type: ignore[attr-defined]
    assert [r.getMessage() for r in records[1:]] == [f"record {i}" for i in range(500)]


async def test_aclose_leaves_no_process() -> None:
    async with InterpreterPool(2, min_idle=2, kind="process") as pool:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(pool.run_sync, funcs.pid)
        pids = {await pool.run_sync(funcs.pid) for _ in range(2)}
    for pid in pids:
        assert process_gone(pid)  # reaped by aclose(), not by a background thread


# -- cancellation ---------------------------------------------------------------------


async def test_cancel_interrupts_loop_and_runs_finally(tmp_path: Path) -> None:
    path = tmp_path / "finally"
    async with InterpreterPool(1, kind="process", cancel_grace=LONG_GRACE) as pool:
        with fifo(tmp_path) as (name, fd):
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    pids.append(await wait_started(fd))
                    scope.cancel()

                pids: list[int] = []
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel)
                    await pool.run_sync(funcs.spin, name, str(path))
            assert scope.cancelled_caught
        assert text(path) == "finally\n"  # the code stopped, its cleanup ran
        stats = pool.stats()
        assert (stats.cancelled, stats.abandoned, stats.busy) == (1, 0, 0)
        assert await pool.run_sync(funcs.pid) != pids[0]  # interrupted: replaced
    assert process_gone(pids[0])


async def test_timeout_interrupts(tmp_path: Path) -> None:
    path = tmp_path / "finally"
    async with InterpreterPool(1, kind="process", cancel_grace=LONG_GRACE) as pool:
        await pool.run_sync(funcs.pid)  # warm: the timeout is for the code
        with fifo(tmp_path) as (name, _):
            with pytest.raises(TimeoutError):
                await pool.run_sync(funcs.spin, name, str(path), timeout=1.0)
        assert text(path) == "finally\n"
        assert pool.stats().timed_out == 1


async def test_kill_after_grace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with InterpreterPool(1, kind="process", cancel_grace=0.2) as pool:
        with fifo(tmp_path) as (name, fd):
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    pids.append(await wait_started(fd))
                    scope.cancel()

                pids: list[int] = []
                with anyio.fail_after(HANG):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(cancel)
                        await pool.run_sync(funcs.sleep_forever, name)
        stats = pool.stats()
        assert (stats.abandoned, stats.cancelled) == (1, 1)
        assert (stats.busy, stats.quarantined, stats.retiring) == (0, 0, 0)
        # its slot is free now, or taken by its replacement, started at once
        assert stats.workers == stats.starting + stats.idle <= 1
        with anyio.fail_after(HANG):
            assert await pool.run_sync(funcs.pid) != pids[0]
        await wait_gone(pids[0])
    [killed] = [r for r in caplog.records if getattr(r, "event", "") == "worker_killed"]
    assert (killed.worker_kind, killed.worker_id) == ("process", pids[0])
    assert killed.call.endswith("sleep_forever")


@pytest.mark.parametrize(
    ("func", "args", "message"),
    [
        (funcs.exit_now, (3,), "exited with status 3"),
        (funcs.kill_self, (), r"killed by signal 9 \(SIGKILL\)"),
    ],
    ids=["exit", "sigkill"],
)
async def test_crash_fails_the_call_alone(
    func: object, args: tuple[object, ...], message: str
) -> None:
    async with InterpreterPool(2, kind="process") as pool:
        pid = await pool.run_sync(funcs.pid)
        with pytest.raises(BrokenWorkerError, match=message):
            await pool.run_sync(func, *args)  # type: ignore[arg-type]
        assert await pool.run_sync(funcs.pid) != pid  # replaced, the pool serves on
        stats = pool.stats()
        assert (stats.failed, stats.completed) == (1, 2)
    assert process_gone(pid)


async def test_sigint_does_not_reach_the_code() -> None:
    """A terminal's Ctrl-C signals the whole process group: workers ignore it."""
    async with InterpreterPool(1, kind="process") as pool:
        pid = await pool.run_sync(funcs.pid)
        # SIGINT to itself: delivered before os.kill() returns; Python's own handler
        # would raise KeyboardInterrupt in the code's next bytecodes
        assert await pool.run_sync(funcs.sigint_self) == "survived"
        assert await pool.run_sync(funcs.pid) == pid  # the worker did not die either
        assert pool.stats().completed == 3


# -- messages speak of processes ---------------------------------------------------


async def test_a_killed_worker_says_how_it_ended() -> None:
    async with InterpreterPool(1, kind="process") as pool:
        pid = await pool.run_sync(funcs.pid)
        with pytest.raises(BrokenWorkerError) as info:
            await pool.run_sync(funcs.kill_self)
    assert str(info.value) == (
        f"process worker {pid} stopped during the call to _funcs_process.kill_self: "
        "the process was killed by signal 9 (SIGKILL)"
    )


async def test_unsendable_calls_name_the_worker_process() -> None:
    lock = threading.Lock()
    view = memoryview(b"abc")
    view.release()  # passes the type check, refused by the channel
    async with InterpreterPool(1, kind="process") as pool:
        pid = await pool.run_sync(funcs.pid)
        with pytest.raises(NotShareableError) as info:
            await pool.run_sync(len, lock)  # type: ignore[arg-type]
        assert str(info.value).startswith(
            "cannot send the arguments of builtins.len to a worker process: "
        )
        assert str(info.value).endswith("can be sent to a worker process")
        with pytest.raises(NotShareableError) as info:
            await pool.run_sync(len, view)
        assert str(info.value) == (
            "the arguments of builtins.len cannot be sent to process worker "
            f"{pid}: argument 0 is a released memoryview"
        )
        with pytest.raises(NotShareableError) as info:
            await pool.run_sync(_funcs_core.make_lock)
        assert "cannot be sent back from the worker process" in str(info.value)
        assert await pool.run_sync(funcs.pid) == pid  # it serves on
    with pytest.raises(NotShareableError, match=r"^cannot send initializer .* to a wo"):
        InterpreterPool(kind="process", initializer=len, initargs=(lock,))


async def test_a_load_failure_names_the_worker_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "aiointerp_tests_late_proc.py").write_text("def f():\n    return 1\n")
    async with InterpreterPool(1, kind="process") as pool:  # sys.path is taken here
        monkeypatch.syspath_prepend(str(tmp_path))
        import aiointerp_tests_late_proc  # type: ignore[import-not-found]

        try:
            with pytest.raises(ModuleNotFoundError) as info:
                await pool.run_sync(aiointerp_tests_late_proc.f)
        finally:
            del sys.modules["aiointerp_tests_late_proc"]
    notes = info.value.__notes__
    assert _LOAD_NOTE.format("process") in notes
    assert "the worker process could not load the function" in notes[0]
    assert not any("interpreter" in note for note in notes)


@pytest.mark.parametrize("kind", ["interpreter", "process"])
async def test_a_worker_loop_that_raises_names_what_it_raised(
    kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # a config the loop rejects: it raises at once, before it is ready
    config = worker_config(None, False, False)._replace(switch_interval=-1.0)
    worker: Worker = (ProcessWorker if kind == "process" else InterpreterWorker)(config)
    try:
        with anyio.fail_after(HANG):
            with pytest.raises(BrokenWorkerError) as info:
                await worker.start()
    finally:
        assert await worker.aclose(HANG)
    message = str(info.value)
    article = "an" if kind == "interpreter" else "a"
    assert message.startswith(f"could not start {article} {kind} worker: ")
    assert "ValueError: switch interval must be strictly positive" in message
    if kind == "process":  # the child's traceback went to its stderr, ours
        assert message.endswith(
            "its worker loop raised ValueError: switch interval must be strictly "
            "positive"
        )
        assert "Traceback" in capfd.readouterr().err


# -- the host dies --------------------------------------------------------------------

_HOST = """
import anyio, sys
sys.path[:0] = [{tests!r}]
import _funcs_process as funcs
from aiointerp import InterpreterPool

async def main():
    async with InterpreterPool(2, kind="process") as pool:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run_sync, funcs.print_pid_then, "sleep")
            tg.start_soon(pool.run_sync, funcs.print_pid_then, "spin")

anyio.run(main)
"""


async def test_no_orphans_when_the_host_is_killed() -> None:
    script = _HOST.format(tests=str(Path(__file__).parents[1]))
    host = await anyio.to_thread.run_sync(
        functools.partial(
            subprocess.Popen,
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            env=child_env(),
        )
    )
    try:
        assert host.stdout is not None
        with anyio.fail_after(HANG):
            pids = [
                int(await anyio.to_thread.run_sync(host.stdout.readline))
                for _ in range(2)
            ]
        host.send_signal(signal.SIGKILL)
        host.wait()
        start = time.monotonic()
        for pid in pids:  # one idle-blocked in C, one spinning: both must go
            await wait_gone(pid)
        # ORPHAN_GRACE (1 s) for the one stuck in C; a hang guard, not a timing test
        assert time.monotonic() - start < HANG
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        if host.stdout is not None:
            host.stdout.close()


# -- workers lost for cause: replaced at once; a dead worker is never handed out -------


async def test_an_interrupted_worker_is_replaced_at_once(tmp_path: Path) -> None:
    # the next caller must not wait for a start (a process importing numpy takes a
    # second): the replacement starts when the interrupted worker is retired
    with operator_events() as events, fifo(tmp_path) as (name, fd):
        async with InterpreterPool(1, kind="process", idle_timeout=None) as pool:
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    first.append(await wait_started(fd))
                    scope.cancel()

                first: list[int] = []
                with anyio.fail_after(HANG):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(cancel)
                        await pool.run_sync(funcs.spin, name, str(tmp_path / "f"))
            # no caller waits: the watcher starts the replacement by itself
            started = await events.wait("worker_started", 2)
            assert pool.stats().waiting == 0
            replacement = started[1].worker_id  # type: ignore[attr-defined]
            assert replacement != first[0]
            assert await pool.run_sync(funcs.pid) == replacement  # it was ready
            assert pool.stats().created == 2


async def test_a_worker_killed_while_idle_is_reaped_and_replaced() -> None:
    with operator_events() as events:
        async with InterpreterPool(2, kind="process", idle_timeout=None) as pool:
            pid = await pool.run_sync(funcs.pid)
            os.kill(pid, signal.SIGKILL)  # the OOM killer, an operator's kill
            [died] = await events.wait("worker_died")
            assert died.worker_id == pid  # type: ignore[attr-defined]
            assert died.levelno == logging.WARNING
            assert "killed by signal 9 (SIGKILL)" in died.reason  # type: ignore[attr-defined]
            await events.wait("worker_started", 2)  # its replacement, unasked
            new = await pool.run_sync(funcs.pid)
            stats = pool.stats()
    assert new != pid
    assert (stats.failed, stats.completed, stats.workers) == (0, 2, 1)


async def test_a_worker_dead_before_it_took_the_call_is_passed_over() -> None:
    # the worker dies, and the call comes before (or after: either way) the pool
    # noticed: the call never started there, so it runs on another worker
    async with InterpreterPool(1, kind="process", idle_timeout=None) as pool:
        for _ in range(3):
            pid = await pool.run_sync(funcs.pid)
            pidfd = os.pidfd_open(pid)
            try:
                os.kill(pid, signal.SIGKILL)
                with anyio.fail_after(HANG):
                    await anyio.wait_readable(pidfd)  # it has ended
            finally:
                os.close(pidfd)
            assert await pool.run_sync(funcs.pid) not in (pid, os.getpid())
        stats = pool.stats()
    assert (stats.failed, stats.completed) == (0, 6)


async def test_a_call_running_when_its_worker_dies_fails(tmp_path: Path) -> None:
    # only the call that was running fails, naming how its worker ended
    async with InterpreterPool(1, kind="process") as pool:
        with fifo(tmp_path) as (name, fd):

            async def kill() -> None:
                os.kill(await wait_started(fd), signal.SIGKILL)

            async with anyio.create_task_group() as tg:
                tg.start_soon(kill)
                with pytest.raises(BrokenWorkerError, match="SIGKILL"):
                    await pool.run_sync(funcs.spin, name, str(tmp_path / "f"))
        assert await pool.run_sync(funcs.pid) != os.getpid()


async def test_a_child_whose_exit_is_stuck_is_killed_and_reaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the child said EXITED, then its exit hangs (an atexit handler): the host waits
    # _REAP_WAIT for it, then kills it, and a thread reaps it and releases its pipes
    monkeypatch.setattr(_process, "_REAP_WAIT", 0.1)
    async with InterpreterPool(1, kind="process") as pool:
        pid = await pool.run_sync(funcs.stall_exit)
        pidfd = os.pidfd_open(pid)
    try:
        with anyio.fail_after(HANG):  # its atexit handler sleeps for an hour
            await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)
    # no_leaks: the reaper thread ended, the pipes were released


async def test_a_worker_is_alive_from_its_start_to_its_reap() -> None:
    config = worker_config(None, False, False)
    for cls in (InterpreterWorker, ProcessWorker):
        worker: Worker = cls(config)
        assert (worker.alive, worker.spent) == (False, True)  # not launched yet
        with anyio.fail_after(HANG):
            await worker.start()
        assert (worker.alive, worker.spent) == (True, False)
        assert await worker.aclose(HANG)  # the thread joined, the child reaped
        assert (worker.alive, worker.spent) == (False, True)


async def test_a_child_killed_is_spent_at_once_and_dead_once_reaped() -> None:
    worker = ProcessWorker(worker_config(None, False, False))
    with anyio.fail_after(HANG):
        await worker.start()
    worker.kill()
    assert (worker.alive, worker.spent) == (True, True)  # killed, not reaped yet
    assert worker.kill()  # again: harmless
    with anyio.fail_after(HANG):
        await worker.wait_exited()  # its pidfd fires: it is reaped
    assert not worker.alive
    worker.kill()  # reaped: nothing to signal
    worker.discard()


async def test_closing_while_a_worker_starts_kills_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a preload stuck in its import: the pool's opening is cancelled, the pool
    # closes, and the starting process is killed at once (it waited 5 s before)
    with fifo(tmp_path) as (name, fd):
        monkeypatch.setenv("AIOINTERP_TEST_STUCK_FIFO", name)
        pool = InterpreterPool(1, kind="process", preload=["_preload_stuck"])
        with anyio.fail_after(3.0):  # a hang guard below the 5 s stop deadline
            async with anyio.create_task_group() as tg:

                async def cancel_when_stuck() -> None:
                    pids.append(await wait_started(fd))
                    tg.cancel_scope.cancel()

                pids: list[int] = []
                tg.start_soon(cancel_when_stuck)
                async with pool:
                    pytest.fail("the pool opened")  # pragma: no cover
            await wait_gone(pids[0])
    with pytest.raises(PoolClosedError):
        await pool.run_sync(funcs.pid)
