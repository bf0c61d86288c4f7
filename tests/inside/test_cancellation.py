"""Cancellation and timeouts carried through to the code running in an interpreter.

Every wait is a handshake: worker functions (tests/_funcs_cancel.py) write their
interpreter id to a pipe once they run, and their ``finally`` blocks and context
managers write to a file. Timeouts only guard against hangs, except where a
timeout is the very thing under test (``timeout=``); ``cancel_grace`` is large
wherever the code is meant to stop, so that "the caller was released" implies
"the code stopped".
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import _funcs_cancel as funcs
import _funcs_core
import _funcs_lifecycle
import anyio
import anyio.lowlevel
import pytest
import trio
from _handshake import HANG, LONG_GRACE, pipe, text, wait_started
from conftest import child_env

import aiointerp
from aiointerp import InterpreterPool, PoolClosedError, PoolStats
from aiointerp.worker import cancelled, checkpoint, deadline

pytestmark = pytest.mark.anyio

INTERRUPTED_AND_FINALLY = "Interrupted:\nfinally\n"


# -- helpers ---------------------------------------------------------------------------


def pending(read_fd: int) -> bool:
    """Is something (a handshake) waiting in the pipe? Never blocks."""
    return funcs.readable(read_fd)


async def cancel_when_started(read_fd: int, cancel: Callable[[], None]) -> None:
    await wait_started(read_fd)
    cancel()


def accounted(stats: PoolStats) -> int:
    return stats.completed + stats.failed + stats.cancelled + stats.timed_out


async def assert_slot_free(pool: InterpreterPool, interrupted_id: int) -> None:
    """The call released its slot; the interrupted interpreter serves no more calls."""
    stats = pool.stats()
    assert stats.busy == 0
    assert stats.waiting == 0
    with anyio.fail_after(HANG):
        assert await pool.run_sync(funcs.interp_id) != interrupted_id
    assert await pool.run_sync(funcs.checksum, 1000, 7) == funcs.checksum(1000, 7)


# -- each source of cancellation interrupts a pure-Python loop -------------------------


async def test_cancel_scope_cancel_interrupts_loop(tmp_path: Path) -> None:
    path = tmp_path / "spin"
    raised: list[type[BaseException]] = []
    ids: list[int] = []
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        with pipe() as (read_fd, write_fd):
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    ids.append(await wait_started(read_fd))
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel)
                    try:
                        await pool.run_sync(funcs.spin, write_fd, str(path))
                    except BaseException as exc:
                        raised.append(type(exc))
                        raise
        assert scope.cancelled_caught
        assert raised == [anyio.get_cancelled_exc_class()]
        assert text(path) == INTERRUPTED_AND_FINALLY
        stats = pool.stats()
        assert (stats.cancelled, stats.timed_out, stats.abandoned) == (1, 0, 0)
        assert (stats.completed, stats.failed) == (0, 0)
        await assert_slot_free(pool, ids[0])  # the interrupted interpreter is retired


@pytest.mark.parametrize("kind", ["move_on_after", "fail_after"])
async def test_anyio_deadline_interrupts_loop(tmp_path: Path, kind: str) -> None:
    """A deadline of an enclosing anyio scope (here: moved to now once the loop runs)."""
    path = tmp_path / "spin"
    raised: list[type[BaseException]] = []
    ids: list[int] = []
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        with pipe() as (read_fd, write_fd):
            make_scope = (
                anyio.move_on_after if kind == "move_on_after" else anyio.fail_after
            )
            try:
                with make_scope(HANG * 10) as scope:

                    async def expire() -> None:
                        ids.append(await wait_started(read_fd))
                        scope.deadline = anyio.current_time()

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(expire)
                        try:
                            await pool.run_sync(funcs.spin, write_fd, str(path))
                        except BaseException as exc:
                            raised.append(type(exc))
                            raise
            except TimeoutError:
                assert kind == "fail_after"
            else:
                assert kind == "move_on_after"
            assert scope.cancelled_caught
            assert raised == [anyio.get_cancelled_exc_class()]
            assert text(path) == INTERRUPTED_AND_FINALLY
            stats = pool.stats()
            assert (stats.cancelled, stats.timed_out, stats.abandoned) == (1, 0, 0)
            await assert_slot_free(pool, ids[0])


async def test_timeout_param_interrupts_loop(tmp_path: Path) -> None:
    path = tmp_path / "spin"
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        await pool.run_sync(funcs.interp_id)  # a warm worker: the call starts at once
        with pipe() as (read_fd, write_fd):
            with pytest.raises(TimeoutError, match="did not finish within"):
                await pool.run_sync(funcs.spin, write_fd, str(path), timeout=1.0)
            assert pending(read_fd)  # the code ran ...
            interrupted_id = await wait_started(read_fd)
        assert text(path) == INTERRUPTED_AND_FINALLY  # ... and was interrupted
        stats = pool.stats()
        assert (stats.cancelled, stats.timed_out, stats.abandoned) == (0, 1, 0)
        assert (stats.completed, stats.failed) == (1, 0)
        await assert_slot_free(pool, interrupted_id)


async def test_run_sync_in_interpreter_timeout(tmp_path: Path) -> None:
    """The default pool, through the module-level function."""
    path = tmp_path / "spin"
    pool = aiointerp.current_default_pool()
    await aiointerp.run_sync_in_interpreter(funcs.interp_id)
    with pipe() as (read_fd, write_fd):
        with pytest.raises(TimeoutError):
            await aiointerp.run_sync_in_interpreter(
                funcs.spin, write_fd, str(path), timeout=1.0
            )
        interrupted_id = await wait_started(read_fd)
    assert text(path) == INTERRUPTED_AND_FINALLY
    assert pool.stats().timed_out == 1
    assert pool.stats().busy == 0
    ids = {await aiointerp.run_sync_in_interpreter(funcs.interp_id) for _ in range(3)}
    assert interrupted_id not in ids


async def test_timeout_deadline_and_cancelled_in_worker(tmp_path: Path) -> None:
    """deadline() is the call's deadline on time.monotonic; cancelled() turns True."""
    path = tmp_path / "deadline"
    timeout = 1.0
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        await pool.run_sync(funcs.interp_id)
        with pipe() as (read_fd, write_fd):
            before = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.run_sync(
                    funcs.watch_deadline, write_fd, str(path), timeout=timeout
                )
            after = time.monotonic()
            assert pending(read_fd)
        first, last = text(path).splitlines()
        worker_deadline, worker_now, cancelled_at_start = first.split()
        # set from the host's clock when the call was made: the same monotonic clock
        assert before + timeout <= float(worker_deadline) <= after
        # ... before the code started: at most `timeout` after the worker's clock
        assert before <= float(worker_now) <= float(worker_deadline)
        assert float(worker_deadline) <= float(worker_now) + timeout
        assert cancelled_at_start == "False"
        assert last == "True"  # cancelled() in the finally, after the interrupt
        assert pool.stats().timed_out == 1


async def test_worker_api_without_cancellation() -> None:
    async with InterpreterPool(1) as pool:
        assert await pool.run_sync(funcs.checkpoint_state) == (False, None)
        state, worker_deadline = await pool.run_sync(funcs.checkpoint_state, timeout=60)
        assert state is False
        assert isinstance(worker_deadline, float)


def test_worker_api_outside_a_worker() -> None:
    checkpoint()
    assert cancelled() is False
    assert deadline() is None


# -- asyncio and trio native cancellation ----------------------------------------------


def test_asyncio_task_cancel(tmp_path: Path) -> None:
    path = tmp_path / "spin"

    async def main() -> None:
        async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
            with pipe() as (read_fd, write_fd):
                task = asyncio.create_task(
                    pool.run_sync(funcs.spin, write_fd, str(path))
                )
                interrupted_id = await wait_started(read_fd)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert text(path) == INTERRUPTED_AND_FINALLY
            stats = pool.stats()
            assert (stats.cancelled, stats.timed_out, stats.abandoned) == (1, 0, 0)
            await assert_slot_free(pool, interrupted_id)

    asyncio.run(main(), debug=True)


def test_asyncio_timeout(tmp_path: Path) -> None:
    path = tmp_path / "spin"

    async def main() -> None:
        async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
            with pipe() as (read_fd, write_fd):
                ids: list[int] = []
                raised: list[type[BaseException]] = []
                try:
                    async with asyncio.timeout(None) as timeout:

                        async def expire() -> None:
                            ids.append(await wait_started(read_fd))
                            timeout.reschedule(asyncio.get_running_loop().time())

                        expirer = asyncio.create_task(expire())
                        await pool.run_sync(funcs.spin, write_fd, str(path))
                except TimeoutError as exc:
                    raised.append(type(exc))
                assert raised == [TimeoutError]
                await expirer
            assert timeout.expired()
            assert text(path) == INTERRUPTED_AND_FINALLY
            stats = pool.stats()
            assert (stats.cancelled, stats.timed_out, stats.abandoned) == (1, 0, 0)
            await assert_slot_free(pool, ids[0])

    asyncio.run(main(), debug=True)


@pytest.mark.parametrize("kind", ["cancel", "move_on_after", "fail_after"])
def test_trio_cancel_scopes(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "spin"

    async def main() -> None:
        async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
            with pipe() as (read_fd, write_fd):
                ids: list[int] = []
                raised: list[type[BaseException]] = []
                scopes: list[trio.CancelScope] = []
                if kind == "cancel":
                    manager: AbstractContextManager[trio.CancelScope] = (
                        trio.CancelScope()
                    )
                elif kind == "move_on_after":
                    manager = trio.move_on_after(HANG * 10)
                else:
                    manager = trio.fail_after(HANG * 10)

                async def cancel() -> None:
                    ids.append(await wait_started(read_fd))
                    if kind == "cancel":
                        scopes[0].cancel()
                    else:
                        scopes[0].deadline = trio.current_time()

                try:
                    with manager as scope:
                        scopes.append(scope)
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(cancel)
                            try:
                                await pool.run_sync(funcs.spin, write_fd, str(path))
                            except BaseException as exc:
                                raised.append(type(exc))
                                raise
                except trio.TooSlowError:
                    assert kind == "fail_after"
                else:
                    assert kind != "fail_after"
                assert scope.cancelled_caught
                assert raised == [trio.Cancelled]
            assert text(path) == INTERRUPTED_AND_FINALLY
            stats = pool.stats()
            assert (stats.cancelled, stats.timed_out, stats.abandoned) == (1, 0, 0)
            await assert_slot_free(pool, ids[0])

    trio.run(main)


# -- cancelled while waiting for a worker ----------------------------------------------


async def test_cancel_while_queued_never_runs(tmp_path: Path) -> None:
    queued = tmp_path / "queued"
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        with pipe() as (read_fd, write_fd):
            first_scope = anyio.CancelScope()
            second_scope = anyio.CancelScope()

            async def first() -> None:
                with first_scope:
                    await pool.run_sync(funcs.spin, write_fd, str(tmp_path / "spin"))

            async def second() -> None:
                with second_scope:
                    await pool.run_sync(funcs.write_file, str(queued), "ran")

            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await wait_started(read_fd)
                tg.start_soon(second)
                await anyio.wait_all_tasks_blocked()
                assert pool.stats().waiting == 1
                second_scope.cancel()
                await anyio.wait_all_tasks_blocked()
                assert pool.stats().waiting == 0
                assert pool.stats().busy == 1  # the first call still runs
                first_scope.cancel()
            assert second_scope.cancelled_caught
            assert first_scope.cancelled_caught
        # the pool served more calls since: the cancelled one never ran
        assert await pool.run_sync(funcs.write_file, str(tmp_path / "x"), "y") == "y"
        assert not queued.exists()
        stats = pool.stats()
        assert (stats.cancelled, stats.completed, stats.waiting) == (2, 1, 0)


async def test_timeout_while_queued_never_runs(tmp_path: Path) -> None:
    """timeout= counts from the call: the time spent queued is included."""
    queued = tmp_path / "queued"
    errors: list[BaseException] = []
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        with pipe() as (read_fd, write_fd):
            with anyio.CancelScope() as first_scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        pool.run_sync, funcs.spin, write_fd, str(tmp_path / "s")
                    )
                    await wait_started(read_fd)
                    try:
                        await pool.run_sync(
                            funcs.write_file, str(queued), "ran", timeout=0.2
                        )
                    except TimeoutError as exc:
                        errors.append(exc)
                    assert pool.stats().waiting == 0
                    assert pool.stats().busy == 1
                    first_scope.cancel()
        assert len(errors) == 1
        assert await pool.run_sync(funcs.write_file, str(tmp_path / "x"), "y") == "y"
        assert not queued.exists()
        stats = pool.stats()
        assert (stats.timed_out, stats.cancelled, stats.waiting) == (1, 1, 0)


# -- C calls and checkpoint() ----------------------------------------------------------


async def test_checkpoint_stops_loop_of_c_calls(tmp_path: Path) -> None:
    path = tmp_path / "hash"
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        with pipe() as (read_fd, write_fd):
            ids: list[int] = []
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    ids.append(await wait_started(read_fd))
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel)
                    await pool.run_sync(funcs.hash_loop, write_fd, str(path))
            assert scope.cancelled_caught
        lines = text(path).splitlines()
        assert lines[0].startswith("Interrupted:")
        assert lines[1:] == ["finally"]
        stats = pool.stats()
        assert (stats.abandoned, stats.busy, stats.cancelled) == (0, 0, 1)
        # stopped by the interrupt (then retired) or by checkpoint() (then reusable)
        assert await pool.run_sync(funcs.checksum, 1000, 7) == funcs.checksum(1000, 7)


async def test_checkpoint_raises_after_interrupt_was_swallowed(tmp_path: Path) -> None:
    """The injected interrupt comes once; checkpoint() keeps reporting the cancel."""
    path = tmp_path / "checkpoint"
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        with pipe() as (read_fd, write_fd):
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_when_started, read_fd, scope.cancel)
                    await pool.run_sync(
                        funcs.swallow_once_then_checkpoint, write_fd, str(path)
                    )
            assert scope.cancelled_caught
        assert text(path) == (
            "caught:\nInterrupted:the call was cancelled or timed out\n"
        )
        stats = pool.stats()
        assert (stats.cancelled, stats.abandoned, stats.busy) == (1, 0, 0)


# -- code that cannot be interrupted ---------------------------------------------------


async def test_uninterruptible_sleep_is_abandoned_and_quarantined(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "aiointerp")
    path = tmp_path / "slept"
    async with InterpreterPool(1, cancel_grace=0.1) as pool:
        with pipe() as (read_fd, write_fd):
            ids: list[int] = []
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    ids.append(await wait_started(read_fd))
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel)
                    await pool.run_sync(funcs.sleeper, write_fd, str(path), 2.0)
            assert scope.cancelled_caught
            # released after cancel_grace, while the sleep goes on
            assert not path.exists()
            stats = pool.stats()
            assert (stats.abandoned, stats.quarantined, stats.busy) == (1, 1, 0)
            assert (stats.workers, stats.cancelled) == (1, 1)

            # the slot stays taken: a new call waits until the sleep returns
            results: list[tuple[int, bool]] = []

            async def next_call() -> None:
                new_id = await pool.run_sync(funcs.interp_id)
                results.append((new_id, path.exists()))

            with anyio.fail_after(HANG):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(next_call)
                    await anyio.wait_all_tasks_blocked()
                    assert pool.stats().waiting == 1
                    assert not path.exists()
        [(new_id, slept_first)] = results
        assert slept_first  # the abandoned call ended before the new one ran
        assert new_id != ids[0]  # in a new interpreter
        assert text(path) == "slept\n"
        stats = pool.stats()
        assert (stats.abandoned, stats.quarantined, stats.completed) == (1, 0, 1)
        assert stats.retired >= 1
        # the operator events of the quarantined worker, named and with their fields
        events = [r for r in caplog.records if hasattr(r, "event")]
        [quarantined] = [r for r in events if r.event == "worker_quarantined"]
        assert quarantined.worker_kind == "interpreter"
        assert quarantined.worker_id == ids[0]
        assert quarantined.call.endswith("sleeper")
        assert quarantined.levelno == logging.WARNING
        retired = [r for r in events if r.event == "worker_retired"]
        assert any(
            r.worker_id == ids[0] and r.reason == "abandoned call ended"
            for r in retired
        )
        started = [r.worker_id for r in events if r.event == "worker_started"]
        assert ids[0] in started
        assert new_id in started


async def test_code_swallowing_interrupts_is_abandoned(tmp_path: Path) -> None:
    path = tmp_path / "swallow"
    async with InterpreterPool(1, cancel_grace=0.1) as pool:
        with pipe() as (read_fd, write_fd), pipe() as (release_r, release_w):
            ids: list[int] = []
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    ids.append(await wait_started(read_fd))
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel)
                    await pool.run_sync(
                        funcs.swallow_until_released, write_fd, release_r, str(path)
                    )
            assert scope.cancelled_caught
            assert "returned" not in text(path)  # it cannot return before release
            stats = pool.stats()
            assert (stats.abandoned, stats.quarantined, stats.busy) == (1, 1, 0)
            # the slot is held: a call waits; releasing the code frees it
            results: list[int] = []

            async def next_call() -> None:
                results.append(await pool.run_sync(funcs.interp_id))

            with anyio.fail_after(HANG):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(next_call)
                    await anyio.wait_all_tasks_blocked()
                    assert pool.stats().waiting == 1
                    assert results == []
                    os.write(release_w, b"r")
        assert results != [ids[0]]
        assert text(path) == "swallowed\nreturned\n"  # its late result was discarded
        stats = pool.stats()
        assert (stats.abandoned, stats.cancelled, stats.completed) == (1, 1, 1)
        assert stats.quarantined == 0


async def test_code_returning_after_interrupt_still_cancels_caller(
    tmp_path: Path,
) -> None:
    path = tmp_path / "swallow"
    raised: list[type[BaseException]] = []
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        with pipe() as (read_fd, write_fd):
            ids: list[int] = []
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    ids.append(await wait_started(read_fd))
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel)
                    try:
                        await pool.run_sync(
                            funcs.swallow_and_return, write_fd, str(path)
                        )
                    except BaseException as exc:
                        raised.append(type(exc))
                        raise
            assert scope.cancelled_caught
        assert raised == [anyio.get_cancelled_exc_class()]
        assert text(path) == "swallowed\n"
        stats = pool.stats()
        assert (stats.cancelled, stats.completed, stats.abandoned) == (1, 0, 0)
        await assert_slot_free(pool, ids[0])


# -- no stale interrupt, cancel storm, aclose ------------------------------------------


async def test_no_stale_interrupt_after_cancels_and_timeouts(tmp_path: Path) -> None:
    """Calls right after cancels and racing timeouts all return their own result."""
    rng = random.Random(20240613)
    plain = timeouts = 0
    async with InterpreterPool(2, cancel_grace=LONG_GRACE) as pool:
        for round_ in range(20):
            with pipe() as (read_fd, write_fd):
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(cancel_when_started, read_fd, scope.cancel)
                        await pool.run_sync(
                            funcs.spin, write_fd, str(tmp_path / f"spin{round_}")
                        )
            for _ in range(5):  # deadlines racing the end of the call
                n, seed = rng.randrange(20_000), rng.randrange(1000)
                try:
                    value = await pool.run_sync(
                        funcs.checksum, n, seed, timeout=rng.uniform(0, 0.005)
                    )
                except TimeoutError:
                    timeouts += 1
                else:
                    assert value == funcs.checksum(n, seed)
                for _ in range(2):
                    n, seed = rng.randrange(2000), rng.randrange(1000)
                    assert await pool.run_sync(funcs.checksum, n, seed) == (
                        funcs.checksum(n, seed)
                    )
                    plain += 1
        stats = pool.stats()
    assert plain == 200
    assert stats.cancelled == 20
    assert stats.timed_out == timeouts
    assert stats.failed == 0
    assert stats.abandoned == 0
    assert accounted(stats) == 20 + 100 + plain


async def test_cancel_storm() -> None:
    calls = 300
    rng = random.Random(1234)
    plans = [
        (
            rng.choice(["plain", "timeout", "timeout", "scope", "cancel"]),
            rng.randrange(100_000),
            rng.randrange(1000),
            rng.uniform(0, 0.02),
            rng.randrange(8),
        )
        for _ in range(calls)
    ]
    outcomes = {"ok": 0, "timeout": 0, "cancelled": 0}
    async with InterpreterPool(2, cancel_grace=LONG_GRACE) as pool:
        todo = iter(plans)

        async def runner() -> None:
            for kind, n, seed, delay, yields in todo:
                expected = funcs.checksum(n, seed)
                if kind in ("plain", "timeout"):
                    try:
                        value = await pool.run_sync(
                            funcs.checksum,
                            n,
                            seed,
                            timeout=delay if kind == "timeout" else None,
                        )
                    except TimeoutError:
                        assert kind == "timeout"
                        outcomes["timeout"] += 1
                        continue
                    assert value == expected
                    outcomes["ok"] += 1
                    continue
                if kind == "scope":
                    scope = anyio.move_on_after(delay)
                else:  # cancelled by another task after a few scheduling rounds
                    scope = anyio.CancelScope()
                async with anyio.create_task_group() as tg:
                    if kind == "cancel":

                        async def cancel_later(
                            scope: anyio.CancelScope = scope, yields: int = yields
                        ) -> None:
                            for _ in range(yields):
                                await anyio.lowlevel.checkpoint()
                            scope.cancel()

                        tg.start_soon(cancel_later)
                    with scope:
                        value = await pool.run_sync(funcs.checksum, n, seed)
                        assert value == expected
                        outcomes["ok"] += 1
                if scope.cancelled_caught:
                    outcomes["cancelled"] += 1

        with anyio.fail_after(100):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(runner)
        stats = pool.stats()
        assert sum(outcomes.values()) == calls
        assert stats.completed == outcomes["ok"]
        assert stats.timed_out == outcomes["timeout"]
        assert stats.cancelled == outcomes["cancelled"]
        assert stats.failed == 0
        assert accounted(stats) == calls
        assert stats.abandoned == 0
        assert (stats.busy, stats.waiting) == (0, 0)
        assert stats.workers <= stats.max_workers
        assert stats.created - stats.retired == stats.workers - stats.starting
        assert outcomes["timeout"] > 0
        assert outcomes["cancelled"] > 0
        # each kind happened (how many calls beat their deadline depends on the load
        # of the machine: a floor, not a figure)
        assert outcomes["ok"] > calls // 8
        # healthy afterwards
        assert await pool.run_sync(funcs.checksum, 100, 1) == funcs.checksum(100, 1)
        assert pool.stats().workers <= pool.stats().max_workers


async def test_aclose_interrupts_running_call(tmp_path: Path) -> None:
    path = tmp_path / "spin"
    errors: list[BaseException] = []
    pool = InterpreterPool(1, cancel_grace=LONG_GRACE)

    async def call(write_fd: int) -> None:
        try:
            await pool.run_sync(funcs.spin, write_fd, str(path))
        except PoolClosedError as exc:
            errors.append(exc)

    with pipe() as (read_fd, write_fd):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, write_fd)
            await wait_started(read_fd)
            with anyio.fail_after(HANG):
                await pool.aclose(timeout=0.1)
    assert len(errors) == 1
    assert "closed" in str(errors[0])
    assert text(path) == INTERRUPTED_AND_FINALLY
    stats = pool.stats()
    assert (stats.workers, stats.busy, stats.abandoned) == (0, 0, 0)
    with pytest.raises(PoolClosedError):
        await pool.run_sync(funcs.interp_id)


async def test_a_timeout_says_whether_the_code_ran() -> None:
    async with InterpreterPool(1) as pool:
        with pipe() as (started_r, started_w), pipe() as (release_r, release_w):
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    pool.run_sync, _funcs_lifecycle.block, started_w, release_r
                )
                with anyio.fail_after(HANG):
                    await anyio.wait_readable(started_r)
                # the only worker is busy: this call waits for it, and times out so
                with pytest.raises(TimeoutError) as waited:
                    await pool.run_sync(_funcs_core.identity, 1, timeout=0.05)
                os.write(release_w, b"r")
            with pytest.raises(TimeoutError) as ran:
                await pool.run_sync(_funcs_lifecycle.spin, started_w, timeout=0.05)
        stats = pool.stats()
    message = str(waited.value)
    assert message.startswith(
        "_funcs_core.identity did not start within 0.05 s and never ran: it waited"
    )
    assert "(max_workers=1: 1 busy, 0 starting" in message
    assert "Raise max_workers" in message
    assert str(ran.value) == (
        "_funcs_lifecycle.spin did not finish within 0.05 s and was interrupted"
    )
    assert stats.timed_out == 2


# -- faults of the interrupter's making --------------------------------------------------


async def test_a_tool_id_taken_meanwhile_is_skipped(tmp_path: Path) -> None:
    # the interrupter's first tool id looks free but is taken when it claims it (by
    # a thread of the code, between the two steps): it takes the next one
    from aiointerp._inside import _interrupt

    path = tmp_path / "spin"
    first = _interrupt._TOOL_IDS[0]
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        with pipe() as (read_fd, write_fd):
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    await wait_started(read_fd)
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel)
                    await pool.run_sync(
                        funcs.spin_with_raced_tool, write_fd, str(path), first
                    )
    assert scope.cancelled_caught
    assert text(path) == INTERRUPTED_AND_FINALLY


def test_ctypes_that_fails_its_first_import(tmp_path: Path) -> None:
    # seen once on 3.15.2, workers starting in parallel: ctypes/__init__.py raised
    # AttributeError; the interrupter imports it again. A finder fails it once here.
    code = """if True:
        import sys

        class FailOnce:
            def find_spec(self, name, path=None, target=None):
                if name == "ctypes":
                    sys.meta_path.remove(self)
                    raise AttributeError("c_ubyte")

        sys.meta_path.insert(0, FailOnce())
        from aiointerp._inside import _interrupt

        assert all(type(f).__name__ != "FailOnce" for f in sys.meta_path)
        _interrupt.clear_async_exc(0)  # ctypes works
        print("ok")
    """
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")
