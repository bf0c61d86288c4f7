"""How a worker of a pool goes from one state to the next, on the event loop.

A ready worker (started, or freed by its call) is handed to the first caller
waiting for its kind, or idles; in a pool of several kinds the allocation policy
may retire it instead, to make room for a worker of another kind. A worker lost for
cause (interrupted, killed, dead while idle) is replaced at once, so that the next
caller does not wait for a start. Stopping a worker, and waiting for an abandoned
call to return, run as tasks of the watcher's task group.
"""

from __future__ import annotations

import logging
import math
from typing import Final

import anyio
import anyio.abc

from .._kinds._backends import ki_protected
from .._kinds._config import a_worker
from .._kinds._worker import Worker
from .._wire._errors import BrokenWorkerError
from ._events import event
from ._measures import Measures
from ._states import BUSY, IDLE, QUARANTINED, RETIRING

__all__ = ["STOP_DEADLINE", "Handover"]

#: Deadline to stop a worker that runs no call (normally a few milliseconds).
STOP_DEADLINE: Final = 5.0
#: seconds a replacement waits after the loss of a worker: a call cancelled because
#: the program ends (Ctrl-C) must not start a worker that the end of the event loop
#: would leave half started
REPLACE_AFTER: Final = 0.05
#: seconds between two plans made when a worker is freed (unless a kind starves):
#: a plan costs tens of microseconds, and conversions by share are seconds apart
PLAN_EVERY: Final = 0.01


class Handover(Measures):
    """The moves of a pool's workers that follow a start, a call, or a loss."""

    #: seconds an idle worker is kept (``None``: for ever; set by the roster)
    idle_timeout: float | None

    def __init__(
        self,
        kinds: tuple[str, ...],
        spills: dict[str, str] | None,
        max_workers: int,
        min_idle: int,
    ) -> None:
        super().__init__(kinds, spills, max_workers, min_idle)
        self.running = True  # False once the pool closes: no new work
        #: the watcher's task group, while it runs
        self.tg: anyio.abc.TaskGroup | None = None
        #: set to have the watcher look at the pool again
        self.wake = anyio.Event()
        self.created = self.retired = self.abandoned = self.shed = 0
        #: seconds running calls get to finish when the pool closes (set by aclose)
        self.close_timeout = 0.0

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
        if self.several and len(self.waiters) > self.waiters.waiting.get(kind, 0):
            conversion = self._conversion(worker)
            if conversion is not None:
                self._convert(worker, old, conversion)
                return
        waiter = self.waiters.first(kind)
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

    def _convert(
        self, worker: Worker, old: str, conversion: tuple[str, str, str]
    ) -> None:
        """Retire *worker* to make room for a worker of another kind."""
        _, kind, rule = conversion
        self.last_conversion = anyio.current_time()
        self._move(worker, old, RETIRING)
        self._stop(worker, f"making room for {a_worker(kind)} ({rule})")

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
            event(
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
            event(
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
            event(
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
