"""Faults at the worker boundary: what a call hands over, or leaves behind, that the
worker cannot take back as usual. Each fault fails the one call (or nobody) at once,
and the pool keeps its capacity.

Real interpreters, real event loops (asyncio, uvloop and trio).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _funcs_lifecycle as f
import anyio
import anyio.lowlevel
import pytest
from conftest import child_env

from aiointerp import InterpreterPool, NotShareableError, PoolBusyError, RemoteError

pytestmark = pytest.mark.anyio

HANG_GUARD = 30.0


def _warned(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


@pytest.fixture
def hold() -> Iterator[tuple[int, int]]:
    """A pipe whose read end a worker's thread blocks on until the test writes."""
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


async def test_a_job_the_channel_refuses_fails_at_once_and_frees_the_worker() -> None:
    view = memoryview(bytearray(16))
    view.release()  # passes the (type-only) shareability check, refused by the queue
    # a long cancel_grace: a refusal taken for a mid-call cancellation waits it out
    async with InterpreterPool(1, cancel_grace=600) as pool:
        with anyio.fail_after(HANG_GUARD):
            with pytest.raises(
                NotShareableError, match="argument 0 is a released memoryview"
            ):
                await pool.run_sync(len, view)
            stats = pool.stats()
            assert (stats.failed, stats.busy, stats.idle, stats.retired) == (1, 0, 1, 0)
            assert await pool.run_sync(len, b"abc") == 3  # the same worker serves on
        assert pool.stats().created == 1


async def test_a_thread_left_running_does_not_hold_the_slot(
    hold: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    hold_r, hold_w = hold
    caplog.set_level(logging.WARNING, logger="aiointerp")
    # one slot, and the worker is retired after each call: the next call needs a new
    # interpreter while the old one cannot be destroyed (its thread waits for us)
    async with InterpreterPool(1, max_tasks_per_worker=1) as pool:
        with anyio.fail_after(HANG_GUARD):
            first = await pool.run_sync(f.leave_a_thread, hold_r)
            second = await pool.run_sync(f.interp_id)  # served: the slot was freed
            assert second != first
            while not _warned(caplog, "threads started by"):  # noqa: ASYNC110
                await anyio.sleep(0.01)  # a log record has no event
        warning = next(
            r for r in caplog.records if "threads started by" in r.getMessage()
        )
        assert "_funcs_lifecycle.leave_a_thread" in warning.getMessage()
        assert "interp_id" not in warning.getMessage()  # the last call is not blamed
        assert pool.stats().workers <= 1
    os.write(hold_w, b"x")  # the thread ends; the old interpreter is destroyed then
    # (the autouse no_leaks fixture waits for it and checks nothing is left)


async def test_max_waiting_sheds_the_next_call_and_spares_the_waiting_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import _funcs_core as core

    caplog.set_level(logging.DEBUG, "aiointerp")
    started_r, started_w = os.pipe()
    release_r, release_w = os.pipe()
    try:
        async with InterpreterPool(1, max_waiting=1) as pool:
            results: list[object] = []

            async def call(tag: int) -> None:
                results.append(
                    await pool.run_sync(core.hold, tag, started_w, release_r)
                )

            with anyio.fail_after(HANG_GUARD):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call, 1)  # runs, holds the only worker
                    await anyio.wait_readable(started_r)
                    os.read(started_r, 8)
                    tg.start_soon(call, 2)  # waits
                    while pool.stats().waiting != 1:
                        await anyio.lowlevel.checkpoint()
                    with pytest.raises(PoolBusyError, match="max_waiting=1"):
                        await pool.run_sync(core.hold, 3, started_w, release_r)
                    assert pool.stats().waiting == 1  # the waiting call is unaffected
                    os.write(release_w, b"xx")  # both calls run to their end
            assert sorted(r[0] for r in results) == [1, 2]  # type: ignore[index]
            assert pool.stats().shed == 1
            [shed] = [
                r for r in caplog.records if getattr(r, "event", "") == "call_shed"
            ]
            assert (shed.waiting, shed.worker_kind, shed.worker_id) == (1, None, None)
            with pytest.raises(ValueError, match="max_waiting"):
                InterpreterPool(1, max_waiting=-1)
    finally:
        for fd in (started_r, started_w, release_r, release_w):
            os.close(fd)


async def test_max_waiting_zero_never_sheds_a_call_a_worker_is_started_for() -> None:
    import _funcs_core as core

    # a cold pool: no worker yet, but room to start one for each of two callers
    async with InterpreterPool(2, max_waiting=0) as pool:
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tg:
                for tag in (1, 2):
                    tg.start_soon(pool.run_sync, core.identity, tag)
        stats = pool.stats()
    assert (stats.completed, stats.shed) == (2, 0)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_out_of_fds_the_workers_that_started_serve_every_call(backend: str) -> None:
    # a real fd limit in a child process: room for about two of six process workers;
    # twelve calls: the callers whose workers could not start take the ones that
    # did (five failed before), and the warning says what to do
    script = Path(__file__).parents[1] / "scripts" / "few_fds.py"
    done = subprocess.run(
        [sys.executable, str(script), backend],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,  # hang guard
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failed"] == []
    assert report["served"] == 12
    assert 1 <= report["created"] < 6
    [warning, *_] = [w for w in report["warnings"] if "could not start" in w]
    assert "could not start a process worker" in warning
    assert "out of file descriptors" in warning
    assert "ulimit -n" in warning
    assert "lower max_workers" in warning


@pytest.mark.parametrize("kind", ["interpreter", "process"])
async def test_a_module_that_exits_when_a_worker_imports_it_fails_the_call(
    kind: str,
) -> None:
    import _funcs_exits_in_workers as exits

    async with InterpreterPool(1, kind=kind) as pool:
        with anyio.fail_after(HANG_GUARD):
            for _ in range(2):  # not cached: each call loads it, and fails again
                with pytest.raises(RemoteError, match=r"^SystemExit: 4$") as info:
                    await pool.run_sync(exits.answer)
                # the traceback from the worker shows where it exited
                assert "sys.exit(4)" in info.value.remote_traceback
            assert await pool.run_sync(abs, -3) == 3  # the same worker serves on
        stats = pool.stats()
        assert (stats.created, stats.failed, stats.completed) == (1, 2, 1)


async def test_an_interpreter_that_cannot_be_destroyed_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # interp.close() fails (as when a thread of user code lingers in it): the
    # worker's thread says so and ends; the pool closes
    from aiointerp._wire import _interp

    real_create = _interp.create

    class Failing:
        def __init__(self) -> None:
            self._real = real_create()
            self.id = self._real.id

        def run_worker(self, *args: Any) -> None:
            self._real.run_worker(*args)

        def close(self) -> None:
            self._real.close()  # destroyed all the same: nothing leaks
            raise RuntimeError("interpreter has more than one thread")

    monkeypatch.setattr(_interp, "create", Failing)
    with caplog.at_level(logging.WARNING, logger="aiointerp"):
        async with InterpreterPool(1) as pool:
            ident = await pool.run_sync(f.interp_id)
    assert _warned(caplog, f"could not destroy interpreter {ident}: RuntimeError")


async def test_a_done_pipe_that_fails_to_read_ends_the_worker(
    monkeypatch: pytest.MonkeyPatch, anyio_backend_name: str
) -> None:
    # asyncio's registered reader: a read that fails (the fd closed under it) is
    # the end of the pipe: the reader stops watching, its consumer sees b""
    if anyio_backend_name != "asyncio":
        pytest.skip("the registered reader is asyncio's")
    from aiointerp._kinds import _backends

    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        reader = _backends.signal_reader(r)
        real_read = os.read

        def failing_read(fd: int, size: int) -> bytes:
            if fd == r:
                raise OSError(9, "Bad file descriptor")
            return real_read(fd, size)

        monkeypatch.setattr(_backends.os, "read", failing_read)
        os.write(w, b"x")
        with anyio.fail_after(HANG_GUARD):
            assert await reader.read() == b""
        assert reader.ready()  # at its end: never waits again
        reader.close()
    finally:
        os.close(r)
        os.close(w)
