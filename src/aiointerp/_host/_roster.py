"""The roster of one pool: its workers by state, the callers waiting for one, and
the watcher that keeps them; what the pool's calls ask of it.

A call takes a worker of its kind (:meth:`Roster.acquire`: the warmest idle one,
else it waits, first come, first served, for one freed or started for it), and
gives it back (:meth:`Roster.release`), or gives up on it (:meth:`Roster.quarantine`,
:meth:`Roster.kill`) when its code does not stop after an interrupt. The states and
their invariants are :mod:`aiointerp._host._states`'s; the hand-over of a ready
worker :mod:`aiointerp._host._handover`'s; the starts :mod:`aiointerp._host._starts`'s;
the watcher task :mod:`aiointerp._host._watcher`'s; what the allocation policy
(:mod:`aiointerp._host._policy`) is fed :mod:`aiointerp._host._measures`'s. Each is
one class of a chain, which :class:`Roster` ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from .._kinds._backends import ki_protected
from .._kinds._worker import Worker
from .._wire._errors import PoolBusyError, PoolClosedError
from ._events import event
from ._states import BUSY, IDLE, QUARANTINED, RETIRING
from ._waiters import Waiter
from ._watcher import Watcher

__all__ = ["Roster", "Waiter"]


class Roster(Watcher):
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
        super().__init__(kinds, spills, max_workers, min_idle)
        self.make_worker = make_worker
        self.idle_timeout = idle_timeout
        self.max_tasks = max_tasks
        self.max_waiting = max_waiting

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
            if worker is None or self.waiters.waiting.get(kind):
                worker = None
                if other is not None and not self.waiters.waiting.get(other):
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
            event(
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
        self.waiters.append(waiter)
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
                self.waiters.remove(waiter)
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
        self._call_ended(worker)
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

    def quarantine(self, worker: Worker, cancel_grace: float) -> None:
        """*worker*'s code did not stop within ``cancel_grace``: keep its slot."""
        self._move(worker, BUSY, QUARANTINED)
        self._went(worker.caller_kind or worker.kind)
        self.abandoned += 1
        self.wake.set()
        event(
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
        event(
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
