"""The workers of one pool by state, and the moves between states.

Every live worker is in exactly one state, and only :meth:`States._move` changes it:

=========== ============================================ =========================
state       the worker                                   holds a capacity slot
=========== ============================================ =========================
starting    is being launched (its initializer runs)     yes
idle        waits for a call (LIFO: the warmest first)    yes
busy        runs a call, for one caller                  yes
quarantined abandoned by its cancelled caller, still    yes (interpreters cannot
            runs code that could not be interrupted      be killed)
retiring    is being stopped                             yes, until it ends or only
                                                         the threads its calls left
                                                         keep it alive
=========== ============================================ =========================

Workers have a *kind* (``"interpreter"``, ``"process"``); a caller waits for a worker
of one kind, and ``max_workers`` bounds all of them together, whatever their kind.

Invariants, checked on every move: ``live() <= max_workers``; a worker is idle only
while no caller waits for its kind (a freed worker goes to the first waiter of its
kind, FIFO); a busy worker belongs to one caller (its cancel scope lets the pool's
shutdown interrupt it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import anyio

from .._kinds._worker import Worker
from ._waiters import Waiters

__all__ = ["BUSY", "IDLE", "QUARANTINED", "RETIRING", "STARTING", "States"]

STARTING: Final = "starting"
IDLE: Final = "idle"
BUSY: Final = "busy"
QUARANTINED: Final = "quarantined"
RETIRING: Final = "retiring"


class States:
    """The workers of one pool by state, and the callers waiting for one."""

    def __init__(
        self,
        kinds: tuple[str, ...],
        spills: dict[str, str] | None,
        max_workers: int,
        min_idle: int,
    ) -> None:
        #: the kinds of worker this pool runs; ``min_idle`` keeps the first's warm
        self.kinds = kinds
        #: a pool of several kinds: the allocation policy decides its starts
        self.several = len(kinds) > 1
        #: for a kind, another whose workers may serve its callers (kind="auto":
        #: an interpreter call runs in a process as well)
        self.spills = dict(spills or {})
        self.max_workers = max_workers
        self.min_idle = min_idle
        self.idle: list[Worker] = []  # LIFO: [-1] is the warmest, [0] the oldest
        self.busy: dict[Worker, anyio.CancelScope] = {}
        self.starting: set[Worker] = set()
        self.quarantined: set[Worker] = set()
        self.retiring: set[Worker] = set()
        self.states: dict[Worker, str] = {}
        #: workers holding a slot, per kind
        self.live_count: dict[str, int] = dict.fromkeys(kinds, 0)
        self.waiters = Waiters(kinds)

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

    def _serving(self, kind: str) -> bool:
        """Does a worker of *kind* serve callers, or will it (idle, busy, starting)?"""
        return any(
            worker.kind == kind and state in (IDLE, BUSY, STARTING)
            for worker, state in self.states.items()
        )

    @staticmethod
    def _count(workers: Iterable[Worker], kind: str) -> int:
        return sum(1 for worker in workers if worker.kind == kind)
