"""The watcher task of a pool: its starts, idle timeouts and shutdown.

The watcher runs while the pool is open, and wakes when the roster asks it to (a
caller waits, a worker was lost) or when a deadline comes. It retires idle workers
after ``idle_timeout`` (oldest first, down to ``min_idle`` of the first kind),
starts the workers the pool needs (in a pool of several kinds, those
:func:`aiointerp._host._policy.plan` decides, and the conversions it decides),
replaces workers lost for cause, and backs off while workers fail to start. When
the pool closes, it fails the waiting callers, lets running calls finish (or
interrupts them) and stops every worker. All of it is KI-protected on trio.
"""

from __future__ import annotations

import math

import anyio
import anyio.abc
import anyio.lowlevel

from .._kinds._backends import ki_protected
from .._wire._errors import PoolClosedError
from ._starts import Starts
from ._states import IDLE, RETIRING

__all__ = ["Watcher"]


class Watcher(Starts):
    """A pool's workers and the task that keeps them (see the module doc)."""

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

    async def _shutdown(self, tg: anyio.abc.TaskGroup) -> None:
        self.running = False
        if self.opening is not None:  # closed while it opened
            self.opening.event.set()
        error = PoolClosedError("the InterpreterPool was closed")
        self.waiters.fail_all(error)
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
