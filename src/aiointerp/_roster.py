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

Workers have a *kind* (``"interpreter"``, ``"process"``); a caller waits for a worker
of one kind, and ``max_workers`` bounds all of them together, whatever their kind.

Invariants, checked on every move: ``live() <= max_workers``; a worker is idle only
while no caller waits for its kind (a freed worker goes to the first waiter of its
kind, FIFO); a busy worker belongs to one caller (its cancel scope lets the pool's
shutdown interrupt it).

The watcher task keeps ``min_idle`` workers of the first kind warm, starts one for
each waiting caller while there is room (and retires idle workers of another kind
when a caller waits for lack of room), retires idle workers after ``idle_timeout`` (oldest first),
backs off when workers fail to start, and, when the pool closes, fails the waiters,
lets running calls finish (or interrupts them) and stops every worker. Launching and
stopping run as tasks of its task group; all of it is KI-protected on trio.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

import anyio
import anyio.abc

from ._backends import ki_protected
from ._errors import BrokenWorkerError, PoolBusyError, PoolClosedError
from ._worker import Worker

__all__ = ["Roster", "Waiter"]

logger = logging.getLogger("aiointerp")


def _event(
    level: int,
    event: str,
    worker: Worker | None,
    message: str,
    *args: object,
    **fields: object,
) -> None:
    """Log an operator event: a record of logger ``aiointerp`` with ``record.event``.

    The names and fields are documented (docs/pool-tuning.md, "Monitoring"): each
    record has ``event``, ``worker_kind`` and ``worker_id`` (``None`` when no worker
    is concerned), and the event's own fields.
    """
    if logger.isEnabledFor(level):
        extra = {
            "event": event,
            "worker_kind": worker.kind if worker is not None else None,
            "worker_id": worker.ident if worker is not None else None,
            **fields,
        }
        logger.log(level, message, *args, extra=extra)


#: Deadline to stop a worker that runs no call (normally a few milliseconds).
STOP_DEADLINE: Final = 5.0
#: seconds a caller waiting for a worker of one kind lets callers of another kind
#: take the workers freed before it (a pool of several kinds): then a freed worker
#: of the other kind is retired to make room for it
FAIR_WAIT: Final = 0.05
BACKOFF_MIN: Final = 0.05
BACKOFF_MAX: Final = 5.0

STARTING: Final = "starting"
IDLE: Final = "idle"
BUSY: Final = "busy"
QUARANTINED: Final = "quarantined"
RETIRING: Final = "retiring"


class Waiter:
    """A caller waiting for a worker; the watcher or a release hands it one."""

    __slots__ = ("error", "event", "kind", "since", "worker")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        #: when it started to wait (pool clock)
        self.since = anyio.current_time()
        self.event = anyio.Event()
        self.worker: Worker | None = None
        self.error: BaseException | None = None


class Roster:
    """The bookkeeping of one pool's workers, and its watcher (see the module doc)."""

    def __init__(
        self,
        make_worker: Callable[[str], Worker],
        *,
        kinds: tuple[str, ...],
        max_workers: int,
        min_idle: int,
        idle_timeout: float | None,
        max_tasks: int | None,
        max_waiting: int | None = None,
    ) -> None:
        self.make_worker = make_worker
        #: the kinds of worker this pool runs; ``min_idle`` keeps the first's warm
        self.kinds = kinds
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

    def live_of(self, kind: str) -> int:
        """Workers of *kind* that hold a capacity slot."""
        return self._count(self.states.keys(), kind)

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
        if self.idle and self.waiters:
            idle = {worker.kind for worker in self.idle}
            assert all(w.kind not in idle for w in self.waiters), (
                "idle while waited for"
            )

    def _waited_for(self, kind: str) -> bool:
        """Does a caller wait for a worker of *kind*?"""
        return any(waiter.kind == kind for waiter in self.waiters)

    def _idle_of(self, kind: str) -> Worker | None:
        """The warmest idle worker of *kind*."""
        for worker in reversed(self.idle):
            if worker.kind == kind:
                return worker
        return None

    def _set(self, state: str) -> set[Worker]:
        if state == STARTING:
            return self.starting
        if state == QUARANTINED:
            return self.quarantined
        return self.retiring

    # -- one call

    @ki_protected
    async def acquire(self, kind: str) -> Worker:
        """A worker of *kind* for one call: an idle one, else wait (FIFO) for one.

        :raises PoolClosedError: the pool is closed, or closed while we waited
        :raises PoolBusyError: ``max_waiting`` callers wait already
        :raises BrokenWorkerError: the worker started for this caller failed
        """
        if not self.running:
            raise PoolClosedError("the InterpreterPool is closed; create a new one")
        if kind not in self.kinds:  # dropped: its workers cannot start (see _drop_kind)
            kind = self.kinds[0]
        if self.idle:
            worker = self.idle[-1]
            if worker.kind != kind:  # a pool of several kinds (kind="auto")
                worker = self._idle_of(kind)  # type: ignore[assignment]
            if worker is not None and not (self.waiters and self._waited_for(kind)):
                self._move(worker, IDLE, BUSY)
                if self.min_idle and (
                    len(self.idle) < self.min_idle
                    or self._count(self.idle, self.kinds[0]) < self.min_idle
                ):
                    self.wake.set()
                return worker
        if self.max_waiting is not None and self._queued() >= self.max_waiting:
            self.shed += 1
            _event(
                logging.DEBUG,
                "call_shed",
                None,
                "shed a call: %d callers already wait",
                len(self.waiters),
                waiting=len(self.waiters),
            )
            raise PoolBusyError(
                f"{len(self.waiters)} calls already wait for a worker of this pool "
                f"(max_waiting={self.max_waiting}); try again later"
            )
        waiter = Waiter(kind)
        self.waiters.append(waiter)
        if self.live() < self.max_workers or len(self.kinds) > 1:
            self.wake.set()  # room to start a worker for this caller (or to make it)
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
        """Callers that wait for lack of room (not for a worker started for them).

        A retiring worker's slot counts as room: it is freed within milliseconds.
        """
        room = self.max_workers - self.live() + len(self.retiring)
        return len(self.waiters) - max(room, 0)

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
        _event(
            logging.WARNING,
            "worker_quarantined",
            worker,
            "%r: %s did not stop within cancel_grace=%s s after it was "
            "interrupted; quarantined until it returns",
            worker,
            worker.job_label,
            cancel_grace,
            call=worker.job_label,
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
        _event(
            logging.WARNING,
            "worker_killed",
            worker,
            "%r: %s did not stop within cancel_grace=%s s after it was "
            "interrupted; its worker was killed and will be replaced",
            worker,
            worker.job_label,
            cancel_grace,
            call=worker.job_label,
        )

    async def wait_started(self, count: int) -> None:
        """Have *count* workers started (kept idle); raise the first start failure.

        For a pool that opens: it is ready once this returns. The watcher starts
        the workers (``max(count, min_idle)`` at once).

        :raises BrokenWorkerError: a worker could not start (the pool does not
            retry for this opening: close it)
        """
        opening = self.opening = Waiter(self.kinds[0])
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
            head = self.waiters[0]
            if (
                head.kind != worker.kind
                and self.live() >= self.max_workers
                and anyio.current_time() - head.since >= FAIR_WAIT
            ):
                # the longest waiting caller needs another kind and there is no
                # room: this worker makes room for it (callers of its own kind
                # must not overtake it for ever)
                self._move(worker, old, RETIRING)
                self._stop(worker, f"making room for a {head.kind} worker")
                return
            waiter = self._first_waiter(worker.kind)
            if waiter is not None:
                waiter.worker = worker
                self._move(worker, old, BUSY)
                waiter.event.set()
                return
        self._move(worker, old, IDLE)
        if self.waiters:  # for another kind: the watcher may retire this one for them
            self.wake.set()
        elif len(self.idle) == self.min_idle + 1 and self.idle_timeout is not None:
            # the first idle worker beyond the reserve: the watcher may be sleeping
            # with no idle deadline to watch (later ones expire after this one)
            self.wake.set()

    def _first_waiter(self, kind: str) -> Waiter | None:
        """Take the first caller waiting for a worker of *kind* off the queue."""
        for waiter in self.waiters:
            if waiter.kind == kind:
                self.waiters.remove(waiter)
                return waiter
        return None

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
            _event(
                logging.DEBUG,
                "worker_retired",
                worker,
                "retired %r (%s)",
                worker,
                reason,
                reason=reason,
                stopped=True,
            )
        elif worker.lingering:
            _event(
                logging.WARNING,
                "worker_retired",
                worker,
                "%r was retired (%s) but cannot end yet: threads started by %s still "
                "run in it; it no longer counts against max_workers, and ends when "
                "they do",
                worker,
                reason,
                ", ".join(worker.lingering),
                reason=reason,
                stopped=False,
            )
        else:
            _event(
                logging.WARNING,
                "worker_retired",
                worker,
                "%r did not stop (%s): it still runs %s, which did not stop when "
                "interrupted (a C call, or code that caught aiointerp.Interrupted); "
                "it is left to finish",
                worker,
                reason,
                worker.job_label or "its initializer",
                reason=reason,
                stopped=False,
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
        first = self.kinds[0]
        if self.idle_timeout is not None:
            # oldest first, down to min_idle workers of the first kind
            reserve = self._count(self.idle, first)
            for worker in list(self.idle):
                expires = worker.idle_since + self.idle_timeout
                if expires > now:
                    next_check = expires
                    break
                if worker.kind == first:
                    if reserve <= self.min_idle:
                        continue
                    reserve -= 1
                self._move(worker, IDLE, RETIRING)
                self._stop(worker, "idle")
        # the kinds callers wait for, the longest waiting first; then the reserve
        kinds = list(dict.fromkeys(waiter.kind for waiter in self.waiters))
        others_wait = any(kind != first for kind in kinds)
        if first not in kinds:
            kinds.append(first)
        for kind in kinds:
            waiting = sum(1 for waiter in self.waiters if waiter.kind == kind)
            # no reserve while callers wait for another kind: it would take their
            # room; the pool's opening waits for opening_with workers (wait_started)
            reserve = max(self.min_idle, self.opening_with)
            reserve = reserve if kind == first and not others_wait else 0
            wanted = waiting + reserve - self._count(self.idle, kind)
            wanted -= self._count(self.starting, kind)
            room = self.max_workers - self.live()
            if min(wanted, room) > 0:
                if now < self.backoff_until:
                    next_check = min(next_check, self.backoff_until)
                    continue
                if not self._launch(kind, min(wanted, room)):
                    break
            # callers wait, no room: idle workers of another kind make room
            short = min(waiting, wanted) - max(room, 0) - len(self.retiring)
            for worker in list(self.idle) if short > 0 else ():
                if worker.kind != kind:
                    self._move(worker, IDLE, RETIRING)
                    self._stop(worker, f"making room for a {kind} worker")
                    short -= 1
                    if not short:
                        break
        return next_check - now

    @staticmethod
    def _count(workers: Iterable[Worker], kind: str) -> int:
        return sum(1 for worker in workers if worker.kind == kind)

    def _launch(self, kind: str, count: int) -> bool:
        """Start *count* workers of *kind*; False if one could not even be made."""
        assert self.tg is not None
        for _ in range(count):
            try:
                worker = self.make_worker(kind)
            except OSError as exc:  # out of file descriptors...
                self._start_failed(
                    BrokenWorkerError(f"could not start a worker: {exc!r}"), kind
                )
                return False
            self._move(worker, None, STARTING)
            self.tg.start_soon(self._start_worker, worker)
        return True

    @ki_protected
    async def _start_worker(self, worker: Worker) -> None:
        try:
            await worker.start()
        except (BrokenWorkerError, OSError, RuntimeError) as exc:
            if not isinstance(exc, BrokenWorkerError):  # a thread could not start...
                exc = BrokenWorkerError(f"could not start a worker: {exc!r}")
            self._move(worker, STARTING, RETIRING)
            if worker.refused is not None and worker.kind not in self.kinds:
                pass  # a start that failed as the one that dropped its kind did
            elif worker.refused is not None and len(self.kinds) > 1:
                self._drop_kind(worker.kind, worker.refused)
            else:
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
            _event(
                logging.WARNING,
                "worker_started",
                worker,
                "%r started after %d failed attempts",
                worker,
                self.start_failures,
                failures=self.start_failures,
            )
            self.start_failures = 0
        else:
            _event(
                logging.DEBUG,
                "worker_started",
                worker,
                "created %r",
                worker,
                failures=0,
            )
        self._hand_off(worker, STARTING)
        if self.opening is not None:
            self.opening.event.set()

    def _drop_kind(self, kind: str, module: str) -> None:
        """Workers of *kind* cannot start (*module* refuses them): use the others.

        A pool of several kinds (``kind="auto"``) whose initializer needs a module
        that refuses subinterpreters runs everything in processes from then on: the
        callers waiting for *kind* wait for the next kind instead.
        """
        self.kinds = tuple(k for k in self.kinds if k != kind)
        for waiter in self.waiters:
            if waiter.kind == kind:
                waiter.kind = self.kinds[0]
        _event(
            logging.WARNING,
            "kind_dropped",
            None,
            "the pool's initializer or preload needs %s, which refuses "
            'subinterpreters: this kind="auto" pool runs every call in a %s from now on',
            module,
            self.kinds[0],
            worker_kind=kind,
            refused_module=module,
        )
        self.wake.set()

    def _start_failed(self, exc: BrokenWorkerError, kind: str) -> None:
        """Back off, and fail the first caller waiting for *kind*: it waited for this."""
        what = f"{'an' if kind[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {kind} worker"
        self.backoff = min(max(self.backoff * 2, BACKOFF_MIN), BACKOFF_MAX)
        self.backoff_until = anyio.current_time() + self.backoff
        self.start_failures += 1
        fields = {
            "failures": self.start_failures,
            "backoff": self.backoff,
            "error": exc,
        }
        if self.opening is not None and self.opening.error is None:
            # the pool's opening raises it: no retry, and no warning of it here
            self.opening.error = exc
            self.opening.event.set()
            _event(
                logging.DEBUG,
                "worker_start_failed",
                None,
                "could not start %s while the pool opened: %s",
                what,
                exc,
                worker_kind=kind,
                **fields,
            )
        elif self.start_failures == 1:
            _event(
                logging.WARNING,
                "worker_start_failed",
                None,
                "could not start %s (next try in %.2f s; further failures are "
                "counted, not logged, until one starts): %s",
                what,
                self.backoff,
                exc,
                worker_kind=kind,
                **fields,
            )
        else:
            _event(
                logging.DEBUG,
                "worker_start_failed",
                None,
                "could not start %s (%d failures in a row, next try in %.2f s): %s",
                what,
                self.start_failures,
                self.backoff,
                exc,
                worker_kind=kind,
                **fields,
            )
        waiter = self._first_waiter(kind)
        if waiter is not None:
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
