"""The workers of one pool, by state; the callers waiting for one; the watcher.

Every live worker is in exactly one state, and only :meth:`Roster._move` changes it:

========== ============================================ =========================
state      the worker                                   holds a capacity slot
========== ============================================ =========================
starting   is being launched (its initializer runs)     yes
idle       waits for a call (LIFO: the warmest first)    yes
busy       runs a call, for one caller                  yes
quarantined abandoned by its cancelled caller, still    yes (interpreters cannot
           runs code that could not be interrupted      be killed)
retiring   is being stopped                             yes, until it ends or only
                                                        the threads its calls left
                                                        keep it alive
========== ============================================ =========================

Invariants, checked on every move: ``live() <= max_workers``; a worker is idle only
while no caller waits (a freed worker goes to the first waiter, FIFO); a busy worker
belongs to one caller (its cancel scope lets the pool's shutdown interrupt it).

The watcher task keeps ``min_idle`` workers warm, starts one for each waiting caller
while there is room, retires idle workers after ``idle_timeout`` (oldest first),
backs off when workers fail to start, and, when the pool closes, fails the waiters,
lets running calls finish (or interrupts them) and stops every worker. Launching and
stopping run as tasks of its task group; all of it is KI-protected on trio.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Final

import anyio
import anyio.abc

from ._backends import ki_protected
from ._errors import BrokenWorkerError, PoolBusyError, PoolClosedError
from ._worker import Worker

__all__ = ["Roster", "Waiter"]

logger = logging.getLogger("aiointerp")

#: Deadline to stop a worker that runs no call (normally a few milliseconds).
STOP_DEADLINE: Final = 5.0
BACKOFF_MIN: Final = 0.05
BACKOFF_MAX: Final = 5.0

STARTING: Final = "starting"
IDLE: Final = "idle"
BUSY: Final = "busy"
QUARANTINED: Final = "quarantined"
RETIRING: Final = "retiring"


class Waiter:
    """A caller waiting for a worker; the watcher or a release hands it one."""

    __slots__ = ("error", "event", "worker")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.worker: Worker | None = None
        self.error: BaseException | None = None


class Roster:
    """The bookkeeping of one pool's workers, and its watcher (see the module doc)."""

    def __init__(
        self,
        make_worker: Callable[[], Worker],
        *,
        max_workers: int,
        min_idle: int,
        idle_timeout: float | None,
        max_tasks: int | None,
        max_waiting: int | None = None,
    ) -> None:
        self.make_worker = make_worker
        self.max_waiting = max_waiting
        self.max_workers = max_workers
        self.min_idle = min_idle
        self.idle_timeout = idle_timeout
        self.max_tasks = max_tasks
        self.idle: list[Worker] = []  # LIFO: [-1] is the warmest, [0] the oldest
        self.busy: dict[Worker, anyio.CancelScope] = {}
        self.starting: set[Worker] = set()
        self.quarantined: set[Worker] = set()
        self.retiring: set[Worker] = set()
        self.states: dict[Worker, str] = {}
        self.waiters: deque[Waiter] = deque()
        self.running = True  # False once the pool closes: no new work
        self.tg: anyio.abc.TaskGroup | None = None
        self.wake = anyio.Event()
        self.backoff = 0.0
        self.backoff_until = -math.inf
        self.created = self.retired = self.abandoned = self.shed = 0
        #: start failures since the last success (logged with a count)
        self.start_failures = 0
        #: the pool's opening, waiting for ``opening_with`` workers (wait_started)
        self.opening: Waiter | None = None
        self.opening_with = 0

    # -- states

    def live(self) -> int:
        """Workers that hold a capacity slot."""
        return len(self.states)

    def _move(self, worker: Worker, old: str | None, new: str | None) -> None:
        """Move *worker* from state *old* to *new* (None: not live)."""
        assert self.states.get(worker) == old, (worker, self.states.get(worker), old)
        if old == IDLE:
            if self.idle[-1] is worker:  # the warmest: taken by a call
                self.idle.pop()
            else:  # the oldest: retired
                self.idle.remove(worker)
        elif old == BUSY:
            del self.busy[worker]
        elif old is not None:
            self._set(old).discard(worker)
        if new is None:
            del self.states[worker]
            return
        self.states[worker] = new
        if new == IDLE:
            worker.idle_since = anyio.current_time()
            self.idle.append(worker)
        elif new == BUSY:
            self.busy[worker] = anyio.CancelScope()
        else:
            self._set(new).add(worker)
        assert len(self.states) <= self.max_workers, "over capacity"
        assert not (self.idle and self.waiters), "an idle worker while callers wait"

    def _set(self, state: str) -> set[Worker]:
        if state == STARTING:
            return self.starting
        if state == QUARANTINED:
            return self.quarantined
        return self.retiring

    # -- one call

    @ki_protected
    async def acquire(self) -> Worker:
        """A worker for one call: an idle one, else wait (FIFO) for one.

        :raises PoolClosedError: the pool is closed, or closed while we waited
        :raises PoolBusyError: ``max_waiting`` callers wait already
        :raises BrokenWorkerError: the worker started for this caller failed
        """
        if not self.running:
            raise PoolClosedError("the InterpreterPool is closed; create a new one")
        if self.idle and not self.waiters:
            worker = self.idle[-1]
            self._move(worker, IDLE, BUSY)
            if len(self.idle) < self.min_idle:
                self.wake.set()
            return worker
        if self.max_waiting is not None and self._queued() >= self.max_waiting:
            self.shed += 1
            logger.debug("shed a call: %d callers already wait", len(self.waiters))
            raise PoolBusyError(
                f"{len(self.waiters)} calls already wait for a worker of this pool "
                f"(max_waiting={self.max_waiting}); try again later"
            )
        waiter = Waiter()
        self.waiters.append(waiter)
        if self.live() < self.max_workers:
            self.wake.set()  # room to start a worker for this caller
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.worker is not None:
                self.release(waiter.worker)
            elif waiter.error is None:
                self.waiters.remove(waiter)
            raise
        if waiter.error is not None:
            raise waiter.error
        assert waiter.worker is not None
        return waiter.worker

    def _queued(self) -> int:
        """Waiting callers beyond the workers on their way to them (``max_waiting``).

        On their way: starting, retiring (their slot frees up), or room to start one;
        without them, a pool that has no idle worker would shed even its first caller.
        """
        coming = len(self.starting) + len(self.retiring) + self.max_workers
        return len(self.waiters) - coming + self.live()

    def scope(self, worker: Worker) -> anyio.CancelScope:
        """The cancel scope of *worker*'s call (the pool's shutdown cancels it)."""
        return self.busy[worker]

    def release(self, worker: Worker) -> None:
        """A call is done with *worker*: reuse it, or retire it."""
        if worker.spent:
            self._move(worker, BUSY, RETIRING)
            self._stop(worker, "interrupted or broken")
        elif self.max_tasks is not None and worker.tasks >= self.max_tasks:
            self._move(worker, BUSY, RETIRING)
            self._stop(worker, f"served {worker.tasks} calls")
        else:
            self._hand_off(worker, BUSY)
        if not self.running:
            self.wake.set()  # the shutdown waits for the busy calls to end

    def quarantine(self, worker: Worker, cancel_grace: float) -> None:
        """*worker*'s code did not stop within ``cancel_grace``: keep its slot."""
        self._move(worker, BUSY, QUARANTINED)
        self.abandoned += 1
        self.wake.set()
        logger.warning(
            "%r: %s did not stop within cancel_grace=%s s after it was "
            "interrupted; quarantined until it returns",
            worker,
            worker.job_label,
            cancel_grace,
        )
        assert self.tg is not None
        self.tg.start_soon(self._wait_quarantined, worker)

    def kill(self, worker: Worker, cancel_grace: float) -> None:
        """*worker*'s code did not stop within ``cancel_grace``; it was killed.

        Its slot is free at once: a thread reaps the process.
        """
        self._move(worker, BUSY, None)
        self.abandoned += 1
        self.retired += 1
        worker.discard()
        self.wake.set()
        logger.warning(
            "%r: %s did not stop within cancel_grace=%s s after it was "
            "interrupted; its worker was killed and will be replaced",
            worker,
            worker.job_label,
            cancel_grace,
        )

    async def wait_started(self, count: int) -> None:
        """Have *count* workers started (kept idle); raise the first start failure.

        For a pool that opens: it is ready once this returns. The watcher starts
        the workers (``max(count, min_idle)`` at once).

        :raises BrokenWorkerError: a worker could not start (the pool does not
            retry for this opening: close it)
        """
        opening = self.opening = Waiter()
        self.opening_with = count
        self.wake.set()
        try:
            while self.created < count and opening.error is None and self.running:
                await opening.event.wait()
                opening.event = anyio.Event()
        finally:
            self.opening = None
            self.opening_with = 0
        if opening.error is not None:
            raise opening.error

    # -- transitions the watcher drives

    def _hand_off(self, worker: Worker, old: str) -> None:
        """Give a ready worker to the first waiting caller, or make it idle."""
        if not self.running:
            self._move(worker, old, RETIRING)
            self._stop(worker, "pool closed")
            return
        if self.waiters:
            waiter = self.waiters.popleft()
            waiter.worker = worker
            self._move(worker, old, BUSY)
            waiter.event.set()
            return
        self._move(worker, old, IDLE)
        if len(self.idle) == self.min_idle + 1 and self.idle_timeout is not None:
            # the first idle worker beyond the reserve: the watcher may be sleeping
            # with no idle deadline to watch (later ones expire after this one)
            self.wake.set()

    def _stop(
        self, worker: Worker, reason: str, deadline: float = STOP_DEADLINE
    ) -> None:
        assert self.tg is not None
        self.tg.start_soon(self._close, worker, reason, deadline)
        self.wake.set()

    @ki_protected
    async def _close(
        self,
        worker: Worker,
        reason: str,
        deadline: float = STOP_DEADLINE,
        counted: bool = True,
    ) -> None:
        with anyio.CancelScope(shield=True):
            stopped = await worker.aclose(deadline)
        self._move(worker, RETIRING, None)
        if counted and (stopped or worker.lingering):
            self.retired += 1
        self.wake.set()
        if stopped:
            logger.debug("retired %r (%s)", worker, reason)
        elif worker.lingering:
            logger.warning(
                "%r was retired (%s) but cannot end yet: threads started by %s still "
                "run in it; it no longer counts against max_workers, and ends when "
                "they do",
                worker,
                reason,
                ", ".join(worker.lingering),
            )
        else:
            logger.warning(
                "%r did not stop (%s): it still runs %s, which did not stop when "
                "interrupted (a C call, or code that caught aiointerp.Interrupted); "
                "it is left to finish",
                worker,
                reason,
                worker.job_label or "its initializer",
            )

    @ki_protected
    async def _wait_quarantined(self, worker: Worker) -> None:
        """Hold an abandoned worker's slot until its code returns, then replace it."""
        try:
            while worker.job_id:
                await worker.receive()
        except BrokenWorkerError:
            pass
        except BaseException:  # the pool closes while the code still runs
            self._move(worker, QUARANTINED, RETIRING)
            self._stop(worker, "pool closed", deadline=0.0)
            raise
        self._move(worker, QUARANTINED, RETIRING)
        self._stop(worker, "abandoned call ended")

    # -- the watcher

    @ki_protected
    async def watch(self, started: anyio.Event) -> None:
        """The watcher: run until the pool closes, then shut everything down."""
        async with anyio.create_task_group() as tg:
            self.tg = tg
            started.set()
            try:
                while self.running:
                    self.wake = anyio.Event()
                    delay = self._maintain()
                    with anyio.move_on_after(delay):
                        await self.wake.wait()
            finally:
                with anyio.CancelScope(shield=True):
                    await self._shutdown(tg)

    def _maintain(self) -> float:
        now = anyio.current_time()
        next_check = math.inf
        if self.idle_timeout is not None:
            while len(self.idle) > self.min_idle:
                oldest = self.idle[0]
                expires = oldest.idle_since + self.idle_timeout
                if expires > now:
                    next_check = expires
                    break
                self._move(oldest, IDLE, RETIRING)
                self._stop(oldest, "idle")
        wanted = max(len(self.waiters) + self.min_idle, self.opening_with)
        wanted -= len(self.idle) + len(self.starting)
        room = self.max_workers - self.live()
        if min(wanted, room) > 0:
            if now < self.backoff_until:
                next_check = min(next_check, self.backoff_until)
            else:
                assert self.tg is not None
                for _ in range(min(wanted, room)):
                    try:
                        worker = self.make_worker()
                    except OSError as exc:  # out of file descriptors...
                        self._start_failed(
                            BrokenWorkerError(f"could not start a worker: {exc!r}"),
                            "",
                        )
                        break
                    self._move(worker, None, STARTING)
                    self.tg.start_soon(self._start_worker, worker)
        return next_check - now

    @ki_protected
    async def _start_worker(self, worker: Worker) -> None:
        try:
            await worker.start()
        except (BrokenWorkerError, OSError, RuntimeError) as exc:
            if not isinstance(exc, BrokenWorkerError):  # a thread could not start...
                exc = BrokenWorkerError(f"could not start a worker: {exc!r}")
            self._move(worker, STARTING, RETIRING)
            self._start_failed(exc, worker.kind)
            await self._close(worker, "broken", counted=False)
            return
        except BaseException:
            self._move(worker, STARTING, RETIRING)
            await self._close(worker, "pool closed", counted=False)
            raise
        self.created += 1
        self.backoff = 0.0
        self.backoff_until = -math.inf
        if self.start_failures:
            logger.warning(
                "%r started after %d failed attempts", worker, self.start_failures
            )
            self.start_failures = 0
        logger.debug("created %r", worker)
        self._hand_off(worker, STARTING)
        if self.opening is not None:
            self.opening.event.set()

    def _start_failed(self, exc: BrokenWorkerError, kind: str) -> None:
        """Back off, and fail the first waiting caller: it waited for this worker."""
        what = f"a worker {kind}".rstrip()
        self.backoff = min(max(self.backoff * 2, BACKOFF_MIN), BACKOFF_MAX)
        self.backoff_until = anyio.current_time() + self.backoff
        self.start_failures += 1
        if self.opening is not None and self.opening.error is None:
            # the pool's opening raises it: no retry, and no log of it here
            self.opening.error = exc
            self.opening.event.set()
            logger.debug("could not start %s while the pool opened: %s", what, exc)
        elif self.start_failures == 1:
            logger.warning(
                "could not start %s (next try in %.2f s; further failures are "
                "counted, not logged, until one starts): %s",
                what,
                self.backoff,
                exc,
            )
        else:
            logger.debug(
                "could not start %s (%d failures in a row, next try in %.2f s): %s",
                what,
                self.start_failures,
                self.backoff,
                exc,
            )
        if self.waiters:
            waiter = self.waiters.popleft()
            waiter.error = exc
            waiter.event.set()
        self.wake.set()

    async def _shutdown(self, tg: anyio.abc.TaskGroup) -> None:
        self.running = False
        if self.opening is not None:  # closed while it opened
            self.opening.event.set()
        error = PoolClosedError("the InterpreterPool was closed")
        while self.waiters:
            waiter = self.waiters.popleft()
            waiter.error = error
            waiter.event.set()
        if self.busy:
            with anyio.move_on_after(self.close_timeout):
                while self.busy:
                    self.wake = anyio.Event()
                    await self.wake.wait()
            for scope in self.busy.values():
                scope.cancel()
            while self.busy:  # the callers wait cancel_grace at most, then release
                self.wake = anyio.Event()
                await self.wake.wait()
        while self.idle:
            worker = self.idle[-1]
            self._move(worker, IDLE, RETIRING)
            self._stop(worker, "pool closed")
        # quarantined code was interrupted and given cancel_grace already: stop waiting
        tg.cancel_scope.cancel()  # quarantine waits and starts; closes are shielded

    #: seconds running calls get to finish when the pool closes (set by aclose)
    close_timeout = 0.0
