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

Which worker to start, and which idle worker to retire to make room for another
kind, is decided by :func:`aiointerp._host._policy.plan` from a snapshot of this roster;
the roster measures what the policy needs (start costs and call times per kind, the
demand for each kind) and carries its plans out. The watcher task retires idle
workers after ``idle_timeout`` (oldest first, down to ``min_idle`` of the first
kind), replaces workers lost for cause (interrupted, killed, dead while idle) at
once, backs off when workers fail to start, and, when the pool closes, fails the
waiters, lets running calls finish (or interrupts them) and stops every worker.
Launching and stopping run as tasks of its task group; all of it is KI-protected
on trio.
"""

from __future__ import annotations

import errno
import logging
import math
import resource
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

import anyio
import anyio.abc
import anyio.lowlevel

from .._kinds._backends import ki_protected
from .._kinds._worker import Worker, a_worker
from .._wire._errors import BrokenWorkerError, PoolBusyError, PoolClosedError
from . import _policy

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
BACKOFF_MIN: Final = 0.05
BACKOFF_MAX: Final = 5.0
#: what a start of each kind is assumed to cost until one was measured (seconds)
START_COST_GUESS: Final = {"interpreter": 0.02, "process": 0.15}
#: the weight of a new measure in the averages of start costs and call times
COST_WEIGHT: Final = 0.3
#: seconds a replacement waits after the loss of a worker: a call cancelled because
#: the program ends (Ctrl-C) must not start a worker that the end of the event loop
#: would leave half started
REPLACE_AFTER: Final = 0.05
#: a kind is below its share *continuously* only if plans see it so at most this
#: many seconds apart (under load they come every few milliseconds)
BELOW_GAP: Final = 0.25
#: seconds between two plans made when a worker is freed (unless a kind starves):
#: a plan costs tens of microseconds, and conversions by share are seconds apart
PLAN_EVERY: Final = 0.01

STARTING: Final = "starting"
IDLE: Final = "idle"
BUSY: Final = "busy"
QUARANTINED: Final = "quarantined"
RETIRING: Final = "retiring"


def _out_of_fds(exc: BaseException) -> str:
    """A hint when *exc* (or what caused it) says the process is out of fds."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return ""
        if isinstance(seen, OSError) and seen.errno in (errno.EMFILE, errno.ENFILE):
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            return (
                f" (this process is out of file descriptors: its limit is {soft}; "
                "each worker holds several: raise the limit, e.g. with `ulimit -n` "
                "or resource.setrlimit(), or lower max_workers)"
            )
        seen = seen.__cause__ or seen.__context__
    return ""


class Waiter:
    """A caller waiting for a worker; the watcher or a release hands it one."""

    __slots__ = ("error", "event", "kind", "since", "spill", "worker")

    def __init__(self, kind: str, spill: str | None = None) -> None:
        #: the kind of worker it asked for
        self.kind = kind
        #: another kind whose worker it takes as well, or ``None``
        self.spill = spill
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
        spills: dict[str, str] | None = None,
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
        #: for a kind, another whose workers may serve its callers (kind="auto":
        #: an interpreter call runs in a process as well)
        self.spills = dict(spills or {})
        #: callers waiting that a worker of a kind would serve, per kind
        self.waiting: dict[str, int] = dict.fromkeys(kinds, 0)
        #: callers waiting for a worker of a kind they asked for, per kind, and of
        #: those, the ones that take no other kind
        self.asked: dict[str, int] = dict.fromkeys(kinds, 0)
        self.pinned: dict[str, int] = dict.fromkeys(kinds, 0)
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
        # -- what the allocation policy is fed (a pool of several kinds)
        self.several = len(kinds) > 1
        self.demand = _policy.Demand(kinds)
        self.start_cost = _policy.Average(START_COST_GUESS, COST_WEIGHT)
        #: what a new worker's first call takes beyond a call's usual time (the
        #: imports it makes): part of what a start of the kind costs
        self.warm_cost = _policy.Average({}, COST_WEIGHT)
        self.call_time = _policy.Average({}, COST_WEIGHT)
        #: since when the plans have found each kind below its share, and when
        #: one last did
        self.below_since: dict[str, tuple[float, float]] = {}
        #: when a call of each kind last ended (pool clock)
        self.last_used: dict[str, float] = {}
        #: workers lost for cause (interrupted, killed, dead), to replace, per kind
        self.replace: dict[str, int] = dict.fromkeys(kinds, 0)
        #: when the replacements may start (pool clock)
        self.replace_due = -math.inf
        #: when a worker was last retired to make room for another kind
        self.last_conversion = -math.inf
        #: when a freed worker was last checked against the policy
        self.last_plan = -math.inf
        #: workers holding a slot, per kind
        self.live_count: dict[str, int] = dict.fromkeys(kinds, 0)

    # -- states

    def live(self) -> int:
        """Workers that hold a capacity slot."""
        return len(self.states)

    def live_of(self, kind: str) -> int:
        """Workers of *kind* that hold a capacity slot."""
        return self.live_count.get(kind, 0)

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
        else:
            self.live_count[worker.kind] = self.live_count.get(worker.kind, 0) + 1
        if new is None:
            del self.states[worker]
            self.live_count[worker.kind] -= 1
            return
        self.states[worker] = new
        if new == IDLE:
            worker.idle_since = anyio.current_time()
            self.idle.append(worker)
        elif new == BUSY:
            if self.several:  # call times feed the policy
                worker.busy_since = anyio.current_time()
            self.busy[worker] = anyio.CancelScope()
        else:
            self._set(new).add(worker)
        assert len(self.states) <= self.max_workers, "over capacity"
        if self.idle and self.waiters:
            idle = {worker.kind for worker in self.idle}
            assert all(
                w.kind not in idle and w.spill not in idle for w in self.waiters
            ), "idle while waited for"

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

    # -- callers

    def _count_waiter(self, waiter: Waiter, delta: int) -> None:
        kind, spill = waiter.kind, waiter.spill
        self.waiting[kind] = self.waiting.get(kind, 0) + delta
        self.asked[kind] = self.asked.get(kind, 0) + delta
        if spill is None:
            self.pinned[kind] = self.pinned.get(kind, 0) + delta
        else:
            self.waiting[spill] = self.waiting.get(spill, 0) + delta

    def _enqueue(self, waiter: Waiter) -> None:
        self.waiters.append(waiter)
        self._count_waiter(waiter, 1)

    def _dequeue(self, waiter: Waiter) -> None:
        self.waiters.remove(waiter)
        self._count_waiter(waiter, -1)

    def _first_waiter(self, kind: str) -> Waiter | None:
        """Take the first caller that a worker of *kind* serves off the queue."""
        if not self.waiting.get(kind):
            return None
        for waiter in self.waiters:
            if waiter.kind == kind or waiter.spill == kind:
                self._dequeue(waiter)
                return waiter
        return None  # pragma: no cover - the count says one waits

    def _came(self, kind: str) -> None:
        """A caller of *kind* takes a worker or waits for one (the policy's demand)."""
        if self.several:
            self.demand.change(kind, 1, anyio.current_time())

    def _went(self, kind: str) -> None:
        """A caller of *kind* is done with the pool."""
        if self.several:
            now = anyio.current_time()
            self.demand.change(kind, -1, now)
            self.last_used[kind] = now

    # -- one call

    @ki_protected
    async def acquire(self, kind: str, spill: bool = False) -> Worker:
        """A worker of *kind* for one call: an idle one, else wait (FIFO) for one.

        With *spill*, a worker of the kind that may serve *kind*'s callers as well
        (``spills``) is taken when none of *kind* is idle, or is freed first: the
        worker returned is of either kind.

        :raises PoolClosedError: the pool is closed, or closed while we waited
        :raises PoolBusyError: ``max_waiting`` callers wait already
        :raises BrokenWorkerError: no worker of *kind* could be started, and none
            runs that could serve the caller instead
        """
        if not self.running:
            raise PoolClosedError("the InterpreterPool is closed; create a new one")
        if kind not in self.kinds:  # dropped: its workers cannot start (see _drop_kind)
            kind = self.kinds[0]
        other = self.spills.get(kind) if spill else None
        if self.idle:
            warmest = self.idle[-1]
            # kind="auto": the warmest idle worker of this kind, unless callers wait
            # for it (first come, first served), else of the kind it may spill to
            worker = warmest if warmest.kind == kind else self._idle_of(kind)
            if worker is None or self.waiting.get(kind):
                worker = None
                if other is not None and not self.waiting.get(other):
                    worker = self._idle_of(other)
            if worker is not None:
                self._move(worker, IDLE, BUSY)
                self._came(kind)
                worker.caller_kind = kind
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
        waiter = Waiter(kind, other)
        self._enqueue(waiter)
        self._came(kind)
        if self.live() < self.max_workers or (self.several and self.idle):
            # room to start a worker for this caller, or an idle worker of another
            # kind that the policy may retire to make room for it
            self.wake.set()
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.worker is not None:
                self.release(waiter.worker)
            elif waiter.error is None:
                self._dequeue(waiter)
                self._went(waiter.kind)
            else:
                self._went(waiter.kind)
            raise
        if waiter.error is not None:
            self._went(waiter.kind)
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
        kind = worker.kind
        self._went(worker.caller_kind or kind)
        if self.several:
            elapsed = anyio.current_time() - worker.busy_since
            usual = self.call_time.get(kind)
            if worker.tasks == 1 and usual:  # a new worker's first call
                self.warm_cost.add(kind, max(0.0, elapsed - usual))
            self.call_time.add(kind, elapsed)
        if worker.spent:
            self._move(worker, BUSY, RETIRING)
            self._replace(kind)
            self._stop(worker, "interrupted or broken")
        elif self.max_tasks is not None and worker.tasks >= self.max_tasks:
            self._move(worker, BUSY, RETIRING)
            self._stop(worker, f"served {worker.tasks} calls")
        else:
            self._hand_off(worker, BUSY)
        if not self.running:
            self.wake.set()  # the shutdown waits for the busy calls to end

    def _replace(self, kind: str) -> None:
        """A worker of *kind* is lost for cause: the watcher starts another at once.

        So that the next caller does not wait for a start (a process importing
        numpy takes a second) because the last one was interrupted.
        """
        if self.running:
            count = min(self.replace.get(kind, 0) + 1, self.max_workers)
            self.replace[kind] = count
            self.replace_due = anyio.current_time() + REPLACE_AFTER
            self.wake.set()

    def _replacements(self, now: float) -> dict[str, int]:
        """The workers to replace now, per kind (none before ``replace_due``)."""
        if now < self.replace_due:
            return {}
        return self.replace

    def quarantine(self, worker: Worker, cancel_grace: float) -> None:
        """*worker*'s code did not stop within ``cancel_grace``: keep its slot."""
        self._move(worker, BUSY, QUARANTINED)
        self._went(worker.caller_kind or worker.kind)
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

        Its slot is free at once: a thread reaps the process, and a new worker of its
        kind is started in its place.
        """
        self._move(worker, BUSY, None)
        self._went(worker.caller_kind or worker.kind)
        self.abandoned += 1
        self.retired += 1
        worker.discard()
        self._replace(worker.kind)
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

    # -- the allocation policy

    def snapshot(self, freed: Worker | None = None) -> _policy.Snapshot:
        """What :func:`aiointerp._host._policy.plan` decides from, now.

        *freed*: a worker just freed by its call or its start, counted as idle.
        """
        now = anyio.current_time()
        replace = self._replacements(now)
        counts = {kind: [0, 0, 0, 0, 0] for kind in self.kinds}
        slot = {IDLE: 0, BUSY: 1, STARTING: 2, RETIRING: 3, QUARANTINED: 4}
        for worker, state in self.states.items():
            row = counts.get(worker.kind)
            if row is None:  # a kind the pool dropped: its workers hold slots
                row = counts[worker.kind] = [0, 0, 0, 0, 0]
            row[0 if worker is freed else slot[state]] += 1
        heads: dict[str, float] = {}
        for waiter in self.waiters:
            if waiter.kind not in heads:
                heads[waiter.kind] = now - waiter.since
                if len(heads) == len(self.kinds):
                    break
        kinds = {}
        for kind, (idle, busy, starting, stopping, stuck) in counts.items():
            used = self.last_used.get(kind)
            kinds[kind] = _policy.Kind(
                idle=idle,
                busy=busy,
                starting=starting,
                stopping=stopping,
                stuck=stuck,
                waiting=self.asked.get(kind, 0),
                head_wait=heads.get(kind, 0.0),
                demand=self.demand.average(kind, now),
                start_cost=self.start_cost.get(kind) + self.warm_cost.get(kind),
                since_used=math.inf if used is None else now - used,
                replace=replace.get(kind, 0),
                # callers that take no other kind pin their kind
                spill=None if self.pinned.get(kind) else self.spills.get(kind),
            )
        return _policy.Snapshot(
            max_workers=self.max_workers,
            kinds=kinds,
            reserve=max(self.min_idle, self.opening_with),
            can_start=now >= self.backoff_until,
            since_conversion=now - self.last_conversion,
            below_for={
                kind: now - since
                for kind, (since, seen) in self.below_since.items()
                if now - seen <= BELOW_GAP
            },
        )

    def _plan(self, freed: Worker | None = None) -> _policy.Plan:
        """The policy's plan now; remember which kinds it found below their share."""
        plan = _policy.plan(self.snapshot(freed))
        now = anyio.current_time()
        below = self.below_since
        for kind in list(below):  # a plan that sees it not below does not end it:
            if now - below[kind][1] > BELOW_GAP:  # one made on a release counts the
                del below[kind]  # freed worker as idle; only a gap does
        for kind in plan.below:
            since, seen = below.get(kind, (now, now))
            # continuously: a gap between two plans that saw it starts it anew
            below[kind] = (since if now - seen <= BELOW_GAP else now, now)
        return plan

    def _convert(
        self, worker: Worker, old: str, conversion: tuple[str, str, str]
    ) -> None:
        """Retire *worker* to make room for a worker of another kind."""
        _, kind, rule = conversion
        self.last_conversion = anyio.current_time()
        self._move(worker, old, RETIRING)
        self._stop(worker, f"making room for {a_worker(kind)} ({rule})")

    # -- transitions the watcher drives

    def _hand_off(self, worker: Worker, old: str) -> None:
        """Give a ready worker to the first waiting caller, or make it idle.

        In a pool of several kinds where callers of another kind wait, the policy
        may retire it instead, to make room for a worker of their kind.
        """
        if not self.running:
            self._move(worker, old, RETIRING)
            self._stop(worker, "pool closed")
            return
        kind = worker.kind
        if self.several and len(self.waiters) > self.waiting.get(kind, 0):
            conversion = self._conversion(worker)
            if conversion is not None:
                self._convert(worker, old, conversion)
                return
        waiter = self._first_waiter(kind)
        if waiter is not None:
            waiter.worker = worker
            worker.caller_kind = waiter.kind
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

    def _conversion(self, worker: Worker) -> tuple[str, str, str] | None:
        """Should *worker*, just freed, make room for a caller of another kind?

        The policy decides; it is asked at most every :data:`PLAN_EVERY` seconds
        here (a plan costs tens of microseconds, and is made on a release only under
        a mixed load), unless a caller waits for a kind that has no worker.
        """
        now = anyio.current_time()
        if now - self.last_plan < PLAN_EVERY and not self._starving():
            return None
        self.last_plan = now
        plan = self._plan(freed=worker)
        conversion = plan.converts(worker.kind)
        if conversion is None and (
            plan.conversions or plan.recheck < math.inf or any(plan.start.values())
        ):
            self.wake.set()  # the rest of the plan is the watcher's
        return conversion

    def _starving(self) -> bool:
        """Does a caller wait that no worker of the pool could serve?"""
        for kind, count in self.asked.items():
            if not count or self.live_count.get(kind):
                continue
            other = self.spills.get(kind)
            if self.pinned.get(kind) or other is None or not self.live_count.get(other):
                return True
        return False

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
                + ("it was killed" if worker.killable else "it is left to finish"),
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
        self._replace(worker.kind)
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
                    # one more turn of the loop before acting on the wake-up: a call
                    # cancelled as asyncio.run() ends (Ctrl-C) wakes us in the loop's
                    # last turn, and a worker started then would never run
                    await anyio.lowlevel.checkpoint()
            finally:
                with anyio.CancelScope(shield=True):
                    await self._shutdown(tg)
        self.tg = None  # nothing may start in it any more

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
        if not self.several:
            return self._maintain_one(now, next_check) - now
        plan = self._plan()
        for conversion in plan.conversions:
            worker = next(w for w in self.idle if w.kind == conversion[0])  # the oldest
            self._convert(worker, IDLE, conversion)
        for kind, count in plan.start.items():
            if count and not self._launch(kind, count):
                break
        if now < self.backoff_until:
            next_check = min(next_check, self.backoff_until)
        return min(next_check, now + plan.recheck, self._replace_check(now)) - now

    def _replace_check(self, now: float) -> float:
        """When the watcher must look again for replacements not yet due."""
        if now < self.replace_due and any(self.replace.values()):
            return self.replace_due
        return math.inf

    def _maintain_one(self, now: float, next_check: float) -> float:
        """The starts of a pool of one kind (the policy's rule 1, without kinds)."""
        kind = self.kinds[0]
        reserve = max(self.min_idle, self.opening_with)
        wanted = len(self.waiters) + reserve - len(self.idle) - len(self.starting)
        replace = self._replacements(now).get(kind, 0)
        wanted = max(wanted, replace)
        room = self.max_workers - self.live()
        if min(wanted, room) > 0:
            if now < self.backoff_until:
                return min(next_check, self.backoff_until)
            self._launch(kind, min(wanted, room))
        return min(next_check, self._replace_check(now))

    @staticmethod
    def _count(workers: Iterable[Worker], kind: str) -> int:
        return sum(1 for worker in workers if worker.kind == kind)

    def _launch(self, kind: str, count: int) -> bool:
        """Start *count* workers of *kind*; False if one could not even be made.

        Each start of a kind stands for a worker of that kind lost for cause, if any
        is to be replaced (whoever it is started for).
        """
        assert self.tg is not None
        if self.replace.get(kind):
            self.replace[kind] = max(0, self.replace[kind] - count)
        for _ in range(count):
            try:
                worker = self.make_worker(kind)
            except OSError as exc:  # out of file descriptors...
                self._start_failed(
                    BrokenWorkerError(
                        f"could not start {a_worker(kind)}: {exc!r}{_out_of_fds(exc)}"
                    ),
                    kind,
                )
                return False
            self._move(worker, None, STARTING)
            self.tg.start_soon(self._start_worker, worker)
        return True

    @ki_protected
    async def _start_worker(self, worker: Worker) -> None:
        began = anyio.current_time()
        try:
            await worker.start()
        except Exception as exc:
            if not isinstance(exc, BrokenWorkerError):  # a thread could not start...
                exc = BrokenWorkerError(
                    f"could not start {a_worker(worker.kind)}: {exc!r}"
                    f"{_out_of_fds(exc)}"
                )
            self._move(worker, STARTING, RETIRING)
            if worker.refused is not None and worker.kind not in self.kinds:
                pass  # a start that failed as the one that dropped its kind did
            elif worker.refused is not None and self.several:
                self._drop_kind(worker.kind, worker.refused)
            else:
                self._start_failed(exc, worker.kind)
            await self._close(worker, "broken", counted=False)
            return
        except BaseException:
            if worker.killable:  # the pool closes: kill it now (its preload or
                # initializer may be stuck; it serves nothing yet)
                self._move(worker, STARTING, None)
                worker.kill()
                worker.discard()
                _event(
                    logging.DEBUG,
                    "worker_retired",
                    worker,
                    "killed %r: the pool closed while it started",
                    worker,
                    reason="pool closed while it started",
                    stopped=False,
                )
                raise
            self._move(worker, STARTING, RETIRING)
            await self._close(worker, "pool closed", counted=False)
            raise
        self.created += 1
        self.start_cost.add(worker.kind, anyio.current_time() - began)
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
        if worker.killable:  # it may die while idle (OOM killer, kill): watch for it
            how = await worker.wait_exited()
            if how and self.states.get(worker) == IDLE:
                self._move(worker, IDLE, RETIRING)
                self._replace(worker.kind)
                _event(
                    logging.WARNING,
                    "worker_died",
                    worker,
                    "%r died while idle: it %s; a new worker takes its place",
                    worker,
                    how,
                    reason=f"died while idle: it {how}",
                )
                self._stop(worker, f"died while idle: it {how}")

    def _drop_kind(self, kind: str, module: str) -> None:
        """Workers of *kind* cannot start (*module* refuses them): use the others.

        A pool of several kinds (``kind="auto"``) whose initializer needs a module
        that refuses subinterpreters runs everything in processes from then on: the
        callers waiting for *kind* wait for the next kind instead.
        """
        self.kinds = tuple(k for k in self.kinds if k != kind)
        self.several = len(self.kinds) > 1
        now = anyio.current_time()
        self.spills = {k: v for k, v in self.spills.items() if kind not in (k, v)}
        for waiter in self.waiters:
            self._count_waiter(waiter, -1)
            if waiter.kind == kind:
                waiter.kind = self.kinds[0]
            if waiter.spill == kind or waiter.spill == waiter.kind:
                waiter.spill = None
            self._count_waiter(waiter, 1)
        self.demand.move(kind, self.kinds[0], now)
        self.replace.pop(kind, None)
        _event(
            logging.WARNING,
            "kind_dropped",
            None,
            "the pool's initializer or preload needs %s, which refuses "
            'subinterpreters: this kind="auto" pool runs every call in %s from now '
            'on (InterpreterPool(kind="process") starts no interpreter first)',
            module,
            a_worker(self.kinds[0]),
            worker_kind=kind,
            refused_module=module,
        )
        self.wake.set()

    def _start_failed(self, exc: BrokenWorkerError, kind: str) -> None:
        """Back off; fail the first caller waiting for *kind* if nothing else serves it.

        A caller waiting while other workers of its kind run calls or start takes the
        first of them that is ready instead.
        """
        what = a_worker(kind)
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
        waiter = self._unserved(kind)
        if waiter is not None:
            self._dequeue(waiter)
            waiter.error = exc
            waiter.event.set()
        self.wake.set()

    def _unserved(self, kind: str) -> Waiter | None:
        """The first caller asking for *kind* that no worker serves, or will."""

        def serving(kind: str | None) -> bool:
            return any(
                worker.kind == kind and state in (IDLE, BUSY, STARTING)
                for worker, state in self.states.items()
            )

        if serving(kind):
            return None
        for waiter in self.waiters:
            if waiter.kind == kind and (
                waiter.spill is None or not serving(waiter.spill)
            ):
                return waiter
        return None

    async def _shutdown(self, tg: anyio.abc.TaskGroup) -> None:
        self.running = False
        if self.opening is not None:  # closed while it opened
            self.opening.event.set()
        error = PoolClosedError("the InterpreterPool was closed")
        while self.waiters:
            waiter = self.waiters.popleft()
            self._count_waiter(waiter, -1)
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
