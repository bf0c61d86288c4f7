"""Regressions found in review: each test failed (or hung) before its fix."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import _funcs_cancel as funcs
import anyio
import pytest

import aiointerp

pytestmark = pytest.mark.anyio

HANG_GUARD = 30


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


async def test_cancel_before_the_job_is_armed_is_not_lost(
    tmp_path: Path, pipe: tuple[int, int]
) -> None:
    """timeout=0 on an idle worker: the cancel may reach the watchdog before the job.

    A lost cancel would let the infinite loop run until cancel_grace (60 s) and
    quarantine the worker; the hang guard fails first.
    """
    async with aiointerp.InterpreterPool(1, cancel_grace=60) as pool:
        for i in range(20):
            await pool.run_sync(funcs.interp_id)  # an idle, warm worker
            with anyio.fail_after(HANG_GUARD), pytest.raises(TimeoutError):
                await pool.run_sync(
                    funcs.spin, pipe[1], str(tmp_path / f"{i}"), timeout=0
                )
        stats = pool.stats()
        assert (stats.abandoned, stats.quarantined, stats.timed_out) == (0, 0, 20)


async def test_close_while_the_first_caller_waits_for_start() -> None:
    pool = aiointerp.InterpreterPool(1)
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await pool.run_sync(funcs.interp_id)
        except aiointerp.PoolClosedError as exc:
            outcome.append(exc)

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.lowlevel.checkpoint()  # the caller is starting the pool
            await pool.aclose()
    assert len(outcome) == 1


async def test_memoryview_nested_in_a_result_is_refused() -> None:
    async with aiointerp.InterpreterPool(1, max_tasks_per_worker=1) as pool:
        with pytest.raises(aiointerp.NotShareableError, match="memoryview"):
            await pool.run_sync(funcs.nested_view)
        assert await pool.run_sync(funcs.interp_id) > 0  # the pool keeps serving


def test_second_native_cancel_keeps_the_slot_accounting(
    tmp_path: Path, pipe: tuple[int, int]
) -> None:
    """asyncio: a second Task.cancel() during the grace wait breaks anyio's shield."""

    async def main() -> None:
        async with aiointerp.InterpreterPool(1, cancel_grace=5) as pool:
            task = asyncio.ensure_future(
                pool.run_sync(funcs.sleeper, pipe[1], str(tmp_path / "s"), 0.5)
            )
            await anyio.wait_readable(pipe[0])
            os.read(pipe[0], 8)
            task.cancel()
            await anyio.wait_all_tasks_blocked()  # in the shielded grace wait
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stats = pool.stats()
            assert stats.busy == 0
            assert stats.quarantined + stats.retiring == 1
            # the slot comes back once the sleep ends: the pool serves again
            with anyio.fail_after(HANG_GUARD):
                assert await pool.run_sync(funcs.interp_id) > 0

    asyncio.run(main())


def test_asyncio_loop_end_during_retirement_leaks_nothing() -> None:
    """asyncio.run cancels every task natively, the pool's clean-up tasks included.

    The autouse no_leaks fixture checks pipes, threads and interpreters afterwards.
    """

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await aiointerp.run_sync_in_interpreter(
                funcs.checksum, 10**9, 1, timeout=0.05
            )

    asyncio.run(main())
