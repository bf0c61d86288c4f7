"""Pool lifecycle: the watcher keeps the pool warm (min_idle), lean (idle_timeout,
max_tasks_per_worker) and healthy (initializer failures, backoff), and the pool closes
cleanly (aclose, the default pool with its event loop).

Real interpreters, real event loops (asyncio and trio). Background state changes that
have no event (a worker created or retired by the watcher) are awaited by polling
``stats()`` under a hang guard; everything else is synchronised through pipes.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import _funcs_lifecycle as f
import anyio
import anyio.lowlevel
import pytest

import aiointerp
from aiointerp import (
    BrokenWorkerError,
    InterpreterPool,
    PoolClosedError,
    PoolStats,
    RemoteTraceback,
)
from aiointerp._wire import _interp

HANG_GUARD = 30.0
COUNTERS = (
    "created",
    "retired",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
    "abandoned",
)


# -- helpers --------------------------------------------------------------------------


async def wait_for(
    predicate: Callable[[], bool], what: str, timeout: float = HANG_GUARD
) -> None:
    """Poll a background state change that has no event (hang guard: *timeout*)."""
    try:
        with anyio.fail_after(timeout):
            while not predicate():  # noqa: ASYNC110 - the watcher sets no event
                await anyio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


class Gate:
    """Two pipes: workers say "started" on one and wait to be released on the other."""

    def __init__(self) -> None:
        self.started_r, self.started_w = os.pipe()
        self.release_r, self.release_w = os.pipe()

    async def started(self, count: int = 1) -> None:
        """Wait until *count* more calls said they started."""
        with anyio.fail_after(HANG_GUARD):
            for _ in range(count):
                await anyio.wait_readable(self.started_r)
                assert os.read(self.started_r, 1) == b"s"

    def release(self, count: int = 1) -> None:
        os.write(self.release_w, b"r" * count)

    def close(self) -> None:
        for fd in (self.started_r, self.started_w, self.release_r, self.release_w):
            os.close(fd)


@contextmanager
def gate() -> Iterator[Gate]:
    g = Gate()
    try:
        yield g
    finally:
        g.close()


async def burst(pool: InterpreterPool, count: int) -> list[int]:
    """Hold *count* calls at once (so *count* workers exist), then let them finish.

    Returns the interpreter ids in the order the calls finished.
    """
    finished: list[int] = []
    with gate() as g:
        send, receive = anyio.create_memory_object_stream[int](count)

        async def call() -> None:
            await send.send(await pool.run_sync(f.block, g.started_w, g.release_r))

        async with send, receive, anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(call)
            await g.started(count)
            for _ in range(count):  # one at a time: a known order of becoming idle
                g.release()
                with anyio.fail_after(HANG_GUARD):
                    finished.append(await receive.receive())
    return finished


def check_gauges(stats: PoolStats) -> None:
    assert stats.workers == (
        stats.idle + stats.busy + stats.starting + stats.quarantined + stats.retiring
    ), stats
    assert 0 <= stats.busy <= stats.max_workers, stats
    assert 0 <= stats.workers <= stats.max_workers, stats
    assert min(getattr(stats, field.name) for field in fields(stats)) >= 0, stats


# -- min_idle: pre-warm and replenish -------------------------------------------------

pytestmark = pytest.mark.anyio


async def test_min_idle_prewarms_before_any_call() -> None:
    before = _interp.live_ids()
    async with InterpreterPool(2, min_idle=2) as pool:
        await wait_for(lambda: pool.stats().idle == 2, "2 idle workers")
        stats = pool.stats()
        check_gauges(stats)
        assert (stats.workers, stats.created, stats.completed) == (2, 2, 0)
        warm = _interp.live_ids() - before
        assert len(warm) == 2

        assert await pool.run_sync(f.interp_id) in warm
        assert pool.stats().created == 2  # the first call created nothing


async def test_min_idle_replenished_in_background_up_to_max_workers() -> None:
    async with InterpreterPool(2, min_idle=1) as pool:
        await wait_for(lambda: pool.stats().idle == 1, "the pre-warmed worker")
        assert pool.stats().created == 1
        with gate() as g:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.run_sync, f.block, g.started_w, g.release_r)
                await g.started()
                # the call took the idle worker: another one is made in the background
                await wait_for(
                    lambda: pool.stats().idle == 1 and pool.stats().busy == 1,
                    "a replacement idle worker",
                )
                assert pool.stats().created == 2

                # this call takes the replacement; there is no room for another one
                tg.start_soon(pool.run_sync, f.block, g.started_w, g.release_r)
                await g.started()
                tg.start_soon(pool.run_sync, f.block, g.started_w, g.release_r)
                await wait_for(lambda: pool.stats().waiting == 1, "a waiting caller")
                await anyio.wait_all_tasks_blocked()  # the watcher had its turn
                stats = pool.stats()
                check_gauges(stats)
                assert (stats.workers, stats.busy, stats.starting) == (2, 2, 0)
                assert (stats.idle, stats.waiting, stats.created) == (0, 1, 2)
                g.release(3)
        stats = pool.stats()
        assert (stats.created, stats.completed, stats.workers) == (2, 3, 2)


# -- idle_timeout ---------------------------------------------------------------------


async def test_idle_workers_retired_oldest_first_down_to_min_idle() -> None:
    async with InterpreterPool(3, min_idle=1, idle_timeout=0.2) as pool:
        await wait_for(lambda: pool.stats().idle == 1, "the pre-warmed worker")
        order = await burst(pool, 3)
        assert len(set(order)) == 3
        assert pool.stats().created == 3

        await wait_for(lambda: pool.stats().retired == 2, "2 retirements")
        stats = pool.stats()
        check_gauges(stats)
        assert (stats.workers, stats.idle, stats.created) == (1, 1, 3)
        live = _interp.live_ids()
        # the two that became idle first are gone; the last one used is kept
        assert order[0] not in live
        assert order[1] not in live
        assert order[2] in live
        assert await pool.run_sync(f.interp_id) == order[2]


async def test_idle_timeout_zero_retires_all_idle_workers() -> None:
    async with InterpreterPool(2, idle_timeout=0) as pool:
        ids = await burst(pool, 2)
        await wait_for(lambda: pool.stats().workers == 0, "all workers retired")
        assert pool.stats().retired == 2
        assert not set(ids) & _interp.live_ids()


async def test_idle_timeout_none_keeps_idle_workers() -> None:
    async with (
        InterpreterPool(2, idle_timeout=None) as keeping,
        InterpreterPool(2, idle_timeout=0.05) as lean,
    ):
        kept = await burst(keeping, 2)
        await burst(lean, 2)
        # the lean pool retiring its workers shows that time passed for both
        await wait_for(lambda: lean.stats().workers == 0, "the lean pool's retirements")
        stats = keeping.stats()
        assert (stats.workers, stats.idle, stats.retired) == (2, 2, 0)
        assert set(kept) <= _interp.live_ids()
        again = await burst(keeping, 2)
        assert set(again) == set(kept)
        assert keeping.stats().created == 2


# -- max_tasks_per_worker -------------------------------------------------------------


async def test_max_tasks_per_worker_replaces_the_interpreter() -> None:
    async with InterpreterPool(1, max_tasks_per_worker=3) as pool:
        ids = [await pool.run_sync(f.interp_id) for _ in range(7)]
        assert ids[0] == ids[1] == ids[2]
        assert ids[3] == ids[4] == ids[5]
        assert len({ids[0], ids[3], ids[6]}) == 3
        await wait_for(lambda: pool.stats().retired == 2, "2 retirements")
        stats = pool.stats()
        assert (stats.created, stats.completed, stats.workers) == (3, 7, 1)
        assert not {ids[0], ids[3]} & _interp.live_ids()


# -- initializer ----------------------------------------------------------------------


async def test_initializer_runs_once_per_interpreter(tmp_path: Path) -> None:
    record = tmp_path / "inits"
    async with InterpreterPool(
        2,
        max_tasks_per_worker=3,
        initializer=f.init_record,
        initargs=[str(record), "hello"],  # any iterable
    ) as pool:
        seen = [await pool.run_sync(f.init_state) for _ in range(4)]
        with gate() as g:
            async with anyio.create_task_group() as tg:
                for _ in range(2):
                    tg.start_soon(pool.run_sync, f.block, g.started_w, g.release_r)
                await g.started(2)

                async def waiting() -> None:
                    seen.append(await pool.run_sync(f.init_state))

                tg.start_soon(waiting)
                await wait_for(lambda: pool.stats().waiting == 1, "a waiting caller")
                g.release(2)
        seen += [await pool.run_sync(f.init_state) for _ in range(3)]
        created = pool.stats().created

    assert all(tag == "hello" and calls == 1 for _, tag, calls in seen), seen
    inits = [int(line) for line in record.read_text().split()]
    assert len(inits) == len(set(inits)) == created  # once per interpreter
    assert {interp for interp, _, _ in seen} <= set(inits)
    assert created >= 3  # max_tasks_per_worker=3 made new ones


async def test_initializer_failure_fails_waiting_callers(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    attempts = tmp_path / "attempts"
    async with InterpreterPool(
        2,
        max_tasks_per_worker=1,
        initializer=f.init_fail_if_exists,
        initargs=(str(marker), str(attempts)),
    ) as pool:
        # the pool opened with one worker; it retires after one call, and the
        # workers started for the next callers fail
        await pool.run_sync(f.interp_id)
        marker.touch()
        await wait_for(lambda: pool.stats().workers == 0, "the first worker retired")
        errors: list[BaseException] = []

        async def call() -> None:
            try:
                await pool.run_sync(f.interp_id)
            except BrokenWorkerError as exc:
                errors.append(exc)

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tg:
                for _ in range(3):  # more callers than max_workers
                    tg.start_soon(call)
        assert len(errors) == 3  # none hangs, none gets another error
        for error in errors:
            assert type(error.__cause__) is f.InitError
            assert str(error.__cause__) == f"marker {marker} present"
        await wait_for(lambda: pool.stats().workers == 0, "broken workers closed")
        stats = pool.stats()
        assert (stats.created, stats.completed, stats.failed) == (1, 1, 3)
        # a caller whose start failed while another worker still started waits for
        # that one, so a caller fails after one or two tries (never more)
        assert 4 <= len(attempts.read_text().split()) <= 1 + 2 * 3


async def test_initializer_failure_keeps_its_exception() -> None:
    hold_r, hold_w = os.pipe()
    pool = InterpreterPool(1, initializer=f.init_fail_holding, initargs=(hold_r,))
    try:
        try:
            with anyio.fail_after(HANG_GUARD):
                with pytest.raises(BrokenWorkerError) as info:
                    async with pool:  # a pool with an initializer opens or fails
                        pytest.fail("the pool opened")
        finally:
            os.write(hold_w, b"x")  # let the interpreter be destroyed
    finally:
        os.close(hold_r)
        os.close(hold_w)
    with pytest.raises(aiointerp.PoolClosedError, match="could not start") as closed:
        await pool.run_sync(f.interp_id)  # no retry: the pool closed itself
    assert closed.value.__cause__ is info.value
    error = info.value
    assert "InitError" in str(error)
    assert "the initializer failed" in str(error)
    cause = error.__cause__
    assert type(cause) is f.InitError
    assert str(cause) == "the initializer failed"
    assert isinstance(cause.__cause__, RemoteTraceback)
    assert "init_fail_holding" in cause.__cause__.text
    assert "InitError: the initializer failed" in cause.__cause__.text


def _block_until_destroyed(ids: set[int]) -> None:
    """Hold the event loop thread until the interpreters *ids* are destroyed."""
    deadline = time.monotonic() + HANG_GUARD
    while ids & _interp.live_ids() and time.monotonic() < deadline:
        time.sleep(0.001)  # a hang guard on a blocked loop, not synchronisation
    assert not ids & _interp.live_ids()


async def test_initializer_exception_read_after_interpreter_destroyed() -> None:
    """The loop reads the failed start only after the interpreter was destroyed.

    A deterministic form of a race seen in practice: the initializer's exception,
    put on the result queue by an interpreter that no longer exists, must still
    arrive (it used to arrive as an unbound queue item, giving a TypeError).
    """
    ready_r, ready_w = os.pipe()
    ack_r, ack_w = os.pipe()
    before = _interp.live_ids()
    pool = InterpreterPool(
        1, initializer=f.init_fail_after_ack, initargs=(ready_w, ack_r)
    )
    try:
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    with pytest.raises(BrokenWorkerError) as info:
                        await pool.run_sync(f.interp_id)  # it opens the pool
                    assert type(info.value.__cause__) is f.InitError

                tg.start_soon(call)
                await anyio.wait_readable(ready_r)
                os.read(ready_r, 1)
                starting = _interp.live_ids() - before
                os.write(ack_w, b"a")
                _block_until_destroyed(starting)
    finally:
        for fd in (ready_r, ready_w, ack_r, ack_w):
            os.close(fd)


async def test_initializer_failure_backs_off_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiointerp")
    marker = tmp_path / "marker"
    attempts = tmp_path / "attempts"

    def count() -> int:
        return len(attempts.read_text().split()) if attempts.exists() else 0

    async with InterpreterPool(
        2,
        min_idle=1,
        max_tasks_per_worker=1,
        initializer=f.init_fail_if_exists,
        initargs=(str(marker), str(attempts)),
    ) as pool:
        # it opened with one worker, which retires after a call; then min_idle makes
        # the watcher start another one, and retry in the background
        marker.touch()
        await pool.run_sync(f.interp_id)
        await wait_for(lambda: count() >= 3, "a retry")
        await anyio.sleep(1.0)  # an observation window, not synchronisation
        # exponential backoff (50 ms doubling): at most ~6 tries in 1.3 s; a pool that
        # spins would try dozens of times. A slow machine only makes fewer tries.
        assert count() <= 9
        assert pool.stats().created == 1
        failed = [
            r
            for r in caplog.records
            if getattr(r, "event", "") == "worker_start_failed"
        ]
        assert (
            failed[0].getMessage().startswith("could not start an interpreter worker")
        )
        assert failed[0].levelno == logging.WARNING  # the first; the next ones: DEBUG
        assert (failed[0].failures, failed[0].worker_kind) == (1, "interpreter")
        assert failed[0].backoff > 0
        assert isinstance(failed[0].error, BrokenWorkerError)

        marker.unlink()
        await wait_for(lambda: pool.stats().idle == 1, "recovery after the backoff")
        assert await pool.run_sync(f.interp_id) > 0
        assert pool.stats().created >= 2


async def test_initializer_recovers_for_the_next_call(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    attempts = tmp_path / "attempts"
    async with InterpreterPool(
        1,
        max_tasks_per_worker=2,
        initializer=f.init_fail_if_exists,
        initargs=(str(marker), str(attempts)),
    ) as pool:
        for _ in range(2):  # the worker the pool opened with, retired after two calls
            await pool.run_sync(f.interp_id)
        marker.touch()
        with anyio.fail_after(HANG_GUARD), pytest.raises(BrokenWorkerError):
            await pool.run_sync(f.interp_id)
        marker.unlink()
        with anyio.fail_after(HANG_GUARD):  # the next try may wait for the backoff
            first = await pool.run_sync(f.interp_id)
        assert await pool.run_sync(f.interp_id) == first
        stats = pool.stats()
        assert (stats.created, stats.completed, stats.failed) == (2, 4, 1)
    assert len(attempts.read_text().split()) == 3


# -- the default pool ends with its event loop ----------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_default_pool_closed_with_its_loop(backend: str) -> None:
    before = _interp.live_ids()

    async def main() -> tuple[set[int], InterpreterPool]:
        pool = aiointerp.current_default_pool()
        with gate() as g:
            async with anyio.create_task_group() as tg:
                for _ in range(2):
                    tg.start_soon(
                        aiointerp.run_sync_in_interpreter,
                        f.block,
                        g.started_w,
                        g.release_r,
                    )
                await g.started(2)
                g.release(2)
        used = {await aiointerp.run_sync_in_interpreter(f.interp_id)}
        used |= _interp.live_ids() - before
        assert pool.stats().idle == 2  # the default idle_timeout keeps them
        return used, pool

    options = {"debug": True} if backend == "asyncio" else {}
    used, pool = anyio.run(main, backend=backend, backend_options=options)
    assert len(used) == 2
    assert _interp.live_ids() == before
    assert pool.stats().workers == 0
    assert pool.stats().retired == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("aiointerp")]


# -- stats under load -----------------------------------------------------------------


async def test_stats_consistent_under_concurrent_load() -> None:
    calls = 50
    samples: list[PoolStats] = []
    results: dict[int, int] = {}
    async with InterpreterPool(
        2, min_idle=1, idle_timeout=0.01, max_tasks_per_worker=7
    ) as pool:
        done = anyio.Event()

        async def sampler() -> None:
            while not done.is_set():
                samples.append(pool.stats())
                await anyio.lowlevel.checkpoint()

        async def call(i: int) -> None:
            results[i] = await pool.run_sync(f.work, 1000 + i)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sampler)
                async with anyio.create_task_group() as callers:
                    for i in range(calls):
                        callers.start_soon(call, i)
                done.set()
        samples.append(pool.stats())

    for previous, current in itertools.pairwise(samples):
        check_gauges(current)
        for name in COUNTERS:
            assert getattr(current, name) >= getattr(previous, name), name
    assert max(s.waiting for s in samples) > 0  # the load really queued
    last = samples[-1]
    assert (last.completed, last.failed, last.cancelled) == (calls, 0, 0)
    assert last.created >= calls // 7
    assert results == {i: f.work(1000 + i) for i in range(calls)}


# -- aclose ---------------------------------------------------------------------------


async def test_aclose_fails_waiters_and_lets_running_call_finish() -> None:
    pool = InterpreterPool(1)
    await pool.__aenter__()
    results: list[object] = []
    waiter_failed = anyio.Event()
    with gate() as g:

        async def running() -> None:
            results.append(await pool.run_sync(f.block, g.started_w, g.release_r))

        async def waiting() -> None:
            with pytest.raises(PoolClosedError):
                await pool.run_sync(f.interp_id)
            waiter_failed.set()

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tg:
                tg.start_soon(running)
                await g.started()
                tg.start_soon(waiting)
                await wait_for(lambda: pool.stats().waiting == 1, "a waiting caller")
                tg.start_soon(pool.aclose)  # timeout=5.0 for the running call
                await waiter_failed.wait()
                with pytest.raises(PoolClosedError):  # new calls while closing
                    await pool.run_sync(f.interp_id)
                g.release()  # the running call ends within aclose's timeout
    assert len(results) == 1
    assert isinstance(results[0], int)
    stats = pool.stats()
    assert (stats.workers, stats.completed, stats.failed) == (0, 1, 1)


async def test_aclose_interrupts_a_call_past_its_timeout() -> None:
    before = _interp.live_ids()
    async with InterpreterPool(1) as pool:
        with gate() as g:
            with anyio.fail_after(HANG_GUARD):
                async with anyio.create_task_group() as tg:

                    async def running() -> None:
                        with pytest.raises(PoolClosedError, match="interrupted"):
                            await pool.run_sync(f.spin, g.started_w)

                    tg.start_soon(running)
                    await g.started()
                    await pool.aclose(timeout=0.05)
                    assert pool.stats().workers == 0
    assert _interp.live_ids() == before
    stats = pool.stats()
    assert (stats.completed, stats.abandoned, stats.retired) == (0, 0, 1)


async def test_closed_pool_raises_pool_closed_error() -> None:
    async with InterpreterPool(1) as pool:
        assert await pool.run_sync(f.interp_id)
    await pool.aclose()  # twice: harmless
    await pool.aclose(timeout=0)
    with pytest.raises(PoolClosedError, match="closed"):
        await pool.run_sync(f.interp_id)
    with pytest.raises(PoolClosedError):
        async with pool:
            pass
    assert isinstance(PoolClosedError("x"), RuntimeError)


async def test_never_started_pool_can_be_closed() -> None:
    pool = InterpreterPool(1, min_idle=1)
    await pool.aclose()
    await pool.aclose()
    with pytest.raises(PoolClosedError):
        await pool.run_sync(f.interp_id)
    assert pool.stats().created == 0


# -- a pool belongs to one event loop -------------------------------------------------


@asynccontextmanager
async def started_pool() -> AsyncIterator[InterpreterPool]:
    async with InterpreterPool(1) as pool:
        await pool.run_sync(f.interp_id)
        yield pool


async def test_pool_used_from_another_event_loop(anyio_backend: Any) -> None:
    """The pool's own loop still runs; a second loop in another thread uses it."""
    other_backend = "trio" if anyio_backend[0] == "asyncio" else "asyncio"
    errors: list[BaseException] = []

    async def elsewhere(pool: InterpreterPool) -> None:
        for attempt in (lambda: pool.run_sync(f.interp_id), pool.aclose):
            try:
                await attempt()
            except RuntimeError as exc:
                errors.append(exc)

    async with started_pool() as pool:
        for backend in (anyio_backend[0], other_backend):
            run = functools.partial(anyio.run, elsewhere, pool, backend=backend)
            await anyio.to_thread.run_sync(run)
        assert len(errors) == 4
        for error in errors:
            assert not isinstance(error, PoolClosedError)
            assert "another event loop" in str(error)
        assert await pool.run_sync(f.interp_id)  # still fine in its own loop


@pytest.mark.parametrize("second", ["asyncio", "trio"])
@pytest.mark.parametrize("first", ["asyncio", "trio"])
def test_pool_used_after_its_event_loop_ended(first: str, second: str) -> None:
    """A pool's watcher ends with its loop, which closes the pool."""
    pool = InterpreterPool(1)

    async def start() -> None:
        await pool.__aenter__()
        await pool.run_sync(f.interp_id)

    async def use() -> None:
        with pytest.raises(PoolClosedError, match="closed"):
            await pool.run_sync(f.interp_id)

    before = _interp.live_ids()
    anyio.run(start, backend=first)
    assert pool.stats().workers == 0
    assert _interp.live_ids() == before
    anyio.run(use, backend=second)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_closing_again_from_another_loop_is_harmless(backend: str) -> None:
    """A pool closed with its loop may be closed again from another loop."""
    pool = InterpreterPool(1)

    async def start() -> None:
        await pool.__aenter__()
        await pool.run_sync(f.interp_id)

    anyio.run(start, backend=backend)
    anyio.run(pool.aclose, backend=backend)


# -- logging --------------------------------------------------------------------------


async def test_logging_debug_lifecycle_quiet_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiointerp")
    async with InterpreterPool(1, max_tasks_per_worker=2) as pool:
        first = await pool.run_sync(f.interp_id)
        created = [r for r in caplog.records if r.getMessage().startswith("created")]
        assert len(created) == 1
        assert created[0].levelno == logging.DEBUG
        assert created[0].name == "aiointerp"
        assert f"interp={first}" in created[0].getMessage()

        caplog.clear()
        for _ in range(10):
            await pool.run_sync(f.work, 10)
        per_call = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert per_call == []
        await wait_for(lambda: pool.stats().retired >= 1, "a retirement")
    retired = [r for r in caplog.records if r.getMessage().startswith("retired")]
    assert retired
    assert all(r.levelno == logging.DEBUG for r in retired)
    assert any(f"interp={first}" in r.getMessage() for r in retired)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


async def test_a_failing_watcher_closes_the_pool_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a bug of ours in the roster's watch: logged, not raised (on trio a failing
    # system task would crash the whole run), and the pool is closed
    pool = aiointerp.InterpreterPool(1)

    async def broken(started: anyio.Event) -> None:
        raise RuntimeError("a bug in the watcher")

    monkeypatch.setattr(pool._roster, "watch", broken)
    caplog.set_level(logging.ERROR, logger="aiointerp")
    with pytest.raises(aiointerp.PoolClosedError, match="is closed"):
        await pool.run_sync(abs, -1)
    assert "the aiointerp pool watcher failed" in caplog.text
    assert pool.stats().workers == 0
    await pool.aclose()
