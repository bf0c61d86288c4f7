"""Pool bookkeeping against a fake worker: states the real tests cannot pin down.

A fake worker replaces :class:`aiointerp._kinds._interpreter.InterpreterWorker` inside the
pool (the roster knows only the :class:`aiointerp._kinds._worker.Worker` interface), so that the
test decides when a worker finishes starting, fails to start, or ends a call. Each
test names the real-interpreter test of the same behaviour in ``test_lifecycle.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import _funcs_lifecycle as f
import anyio
import pytest

from aiointerp import BrokenWorkerError, InterpreterPool, _pool
from aiointerp._wire import _protocol

pytestmark = pytest.mark.anyio

HANG_GUARD = 30.0


class FakeWorker:
    """Stands for a worker; the test drives it through :class:`Fakes`."""

    def __init__(self, fakes: Fakes) -> None:
        self.fakes = fakes
        self.interp_id = next(fakes.ids)
        self.ident = self.interp_id  # the worker interface names it so
        self.kind = "interpreter"  # the kind the pool asks its roster for
        self.killable = False
        self.unstarted = False
        self.busy_since = 0.0
        self.caller_kind = ""
        self.lingering: tuple[str, ...] = ()
        self.refused: str | None = None
        self.job_id = 0
        self.job_label = ""
        self.spent = False
        self.tasks = 0
        self.idle_since = 0.0
        self.closed = False
        self.ready = anyio.Event()  # set by the test to finish starting
        self.release = anyio.Event()  # set by the test to finish the current call
        fakes.workers.append(self)

    async def start(self) -> None:
        self.fakes.attempts.append(self)
        if self.fakes.on_start is not None:
            self.fakes.on_start(self)
        if self.fakes.fail_start:
            self.spent = True
            raise BrokenWorkerError("fake start failure")
        if self.fakes.hold_start:
            await self.ready.wait()

    def send(self, job: _protocol.Job) -> None:
        self.job_id = job.job_id

    async def receive(self) -> _protocol.Outcome:
        if self.fakes.hold_calls:
            await self.release.wait()
            self.release = anyio.Event()
        job_id, self.job_id = self.job_id, 0
        self.tasks += 1
        self.fakes.finished.append(self)
        return _protocol.Outcome(
            job_id, _protocol.OK_SHARED, self.interp_id, None, False
        )

    def interrupt(self) -> None:
        pass

    async def aclose(self, deadline: float) -> bool:
        self.closed = True
        return True


class Fakes:
    def __init__(self) -> None:
        self.ids = itertools.count(1000)
        self.workers: list[FakeWorker] = []
        self.attempts: list[FakeWorker] = []
        self.finished: list[FakeWorker] = []
        self.fail_start = False
        self.hold_start = False
        self.hold_calls = False
        self.on_start: Callable[[FakeWorker], None] | None = None

    def running(self) -> list[FakeWorker]:
        return [w for w in self.workers if w.job_id]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fakes = Fakes()
    monkeypatch.setattr(_pool, "InterpreterWorker", lambda config: FakeWorker(fakes))
    return fakes


async def wait_for(predicate: Callable[[], bool], timeout: float = HANG_GUARD) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - the watcher sets no event
            await anyio.sleep(0.01)


def record_retirements(
    pool: InterpreterPool, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[Any, str]]:
    retired: list[tuple[Any, str]] = []
    original = pool._roster._stop

    def spy(worker: Any, reason: str, *args: Any, **kwargs: Any) -> None:
        retired.append((worker, reason))
        original(worker, reason, *args, **kwargs)

    monkeypatch.setattr(pool._roster, "_stop", spy)
    return retired


# real test: test_idle_workers_retired_oldest_first_down_to_min_idle
async def test_idle_retirement_order_is_oldest_idle_first(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.hold_calls = True
    async with InterpreterPool(4, min_idle=1, idle_timeout=0.05) as pool:
        retired = record_retirements(pool, monkeypatch)
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(pool.run_sync, f.interp_id)
            await wait_for(lambda: len(fakes.running()) == 4)
            # become idle in the reverse order of creation
            order = list(reversed(fakes.running()))
            for worker in order:

                def finished(worker: FakeWorker = worker) -> bool:
                    return fakes.finished[-1:] == [worker]

                worker.release.set()
                await wait_for(finished)
        await wait_for(lambda: pool.stats().retired == 3)
        assert retired == [(worker, "idle") for worker in order[:3]]
        stats = pool.stats()
        assert (stats.workers, stats.idle, stats.created) == (1, 1, 4)
        fakes.hold_calls = False
        assert await pool.run_sync(f.interp_id) == order[3].interp_id


# real test: test_min_idle_replenished_in_background_up_to_max_workers
async def test_starts_never_exceed_max_workers(fakes: Fakes) -> None:
    fakes.hold_start = True
    peak: list[int] = []
    pool = InterpreterPool(3, min_idle=2)
    fakes.on_start = lambda worker: peak.append(pool.stats().workers)
    async with pool:
        await wait_for(lambda: pool.stats().starting == 2)  # the pre-warm
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(pool.run_sync, f.interp_id)
            await wait_for(lambda: pool.stats().waiting == 5)
            await wait_for(lambda: pool.stats().starting == 3)
            await anyio.wait_all_tasks_blocked()
            stats = pool.stats()
            assert (stats.workers, stats.starting, stats.idle) == (3, 3, 0)
            for worker in list(fakes.workers):
                worker.ready.set()
        stats = pool.stats()
        assert (stats.completed, stats.created, stats.workers) == (5, 3, 3)
        assert len(fakes.workers) == 3
        assert max(peak) <= 3


# real test: test_initializer_failure_backs_off_then_recovers
async def test_start_failures_back_off_exponentially_then_reset(
    fakes: Fakes,
) -> None:
    fakes.fail_start = True
    backoffs: list[float] = []
    pool = InterpreterPool(2, min_idle=1)
    fakes.on_start = lambda worker: backoffs.append(pool._roster.backoff)
    async with pool:
        await wait_for(lambda: len(backoffs) >= 6)
        # one try at a time, each after the previous backoff; the first at once
        assert backoffs[:6] == pytest.approx([0.0, 0.05, 0.1, 0.2, 0.4, 0.8])
        assert pool.stats().created == 0

        fakes.fail_start = False
        await wait_for(lambda: pool.stats().idle == 1)
        assert pool._roster.backoff == 0.0
        assert all(worker.closed for worker in fakes.attempts[:-1])
        assert await pool.run_sync(f.interp_id) == fakes.attempts[-1].interp_id
        assert pool.stats().created == 1


# real test: test_initializer_failure_fails_waiting_callers
async def test_each_failed_start_fails_one_waiting_caller(fakes: Fakes) -> None:
    fakes.fail_start = True
    async with InterpreterPool(2) as pool:
        failures = 0

        async def call() -> None:
            nonlocal failures
            with pytest.raises(BrokenWorkerError, match="fake start failure"):
                await pool.run_sync(f.interp_id)
            failures += 1

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert failures == 3
        # a caller whose start failed while another worker still started waits for
        # that one: each caller fails once nothing else could serve it
        attempts = len(fakes.attempts)
        assert attempts >= 3
        await anyio.wait_all_tasks_blocked()
        assert len(fakes.attempts) == attempts  # no caller left: no more tries
        stats = pool.stats()
        assert (stats.failed, stats.created, stats.workers) == (3, 0, 0)


# real test: tests/kinds/test_faults.py::test_out_of_fds_the_workers_that_started_serve_every_call
async def test_a_caller_whose_start_failed_takes_the_next_freed_worker(
    fakes: Fakes,
) -> None:
    fakes.hold_calls = True
    async with InterpreterPool(2) as pool:
        results: list[int] = []

        async def call() -> None:
            results.append(await pool.run_sync(f.interp_id))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await wait_for(lambda: len(fakes.running()) == 1)
            [first] = fakes.workers
            fakes.fail_start = True  # out of fds, say: the next start fails
            tg.start_soon(call)
            await wait_for(lambda: len(fakes.attempts) == 2)
            await anyio.wait_all_tasks_blocked()
            # not failed: the busy worker will serve it
            assert (pool.stats().waiting, pool.stats().failed) == (1, 0)
            first.release.set()
            await wait_for(lambda: len(fakes.finished) == 1)
            await wait_for(lambda: len(fakes.running()) == 1)  # the second call
            first.release.set()
    assert results == [first.interp_id, first.interp_id]
    assert pool.stats().failed == 0
