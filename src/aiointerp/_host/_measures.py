"""What a pool's allocation policy is fed: its measures, and the snapshot made of them.

The policy (:func:`aiointerp._host._policy.plan`) is a pure function of a
:class:`~aiointerp._host._policy.Snapshot`; :class:`Measures` keeps what the
snapshot holds beyond the workers' states: the demand for each kind, what a start
and a call of each kind cost (moving averages), when each kind was last used, the
workers lost for cause that are to be replaced, the start backoff, and since when
the plans have found each kind below its share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import anyio

from .._kinds._worker import Worker
from . import _policy
from ._policy import DEMAND_WINDOW
from ._states import BUSY, IDLE, QUARANTINED, RETIRING, STARTING, States

__all__ = ["Average", "Demand", "Measures"]

#: what a start of each kind is assumed to cost until one was measured (seconds)
START_COST_GUESS: Final = {"interpreter": 0.02, "process": 0.15}
#: the weight of a new measure in the averages of start costs and call times
COST_WEIGHT: Final = 0.3
#: a kind is below its share *continuously* only if plans see it so at most this
#: many seconds apart (under load they come every few milliseconds)
BELOW_GAP: Final = 0.25


class Measures(States):
    """The workers of a pool by state, and what its allocation policy is fed."""

    def __init__(
        self,
        kinds: tuple[str, ...],
        spills: dict[str, str] | None,
        max_workers: int,
        min_idle: int,
    ) -> None:
        super().__init__(kinds, spills, max_workers, min_idle)
        self.demand = Demand(kinds)
        self.start_cost = Average(START_COST_GUESS, COST_WEIGHT)
        #: what a new worker's first call takes beyond a call's usual time (the
        #: imports it makes): part of what a start of the kind costs
        self.warm_cost = Average({}, COST_WEIGHT)
        self.call_time = Average({}, COST_WEIGHT)
        #: since when the plans have found each kind below its share, and when
        #: one last did
        self.below_since: dict[str, tuple[float, float]] = {}
        #: when a call of each kind last ended (pool clock)
        self.last_used: dict[str, float] = {}
        #: workers lost for cause (interrupted, killed, dead), to replace, per kind
        self.replace: dict[str, int] = dict.fromkeys(kinds, 0)
        #: when the replacements may start (pool clock)
        self.replace_due = -math.inf
        #: the start backoff (seconds), and until when no worker starts
        self.backoff = 0.0
        self.backoff_until = -math.inf
        #: when a worker was last retired to make room for another kind
        self.last_conversion = -math.inf
        #: when a freed worker was last checked against the policy
        self.last_plan = -math.inf
        #: workers the pool's opening waits for (kept idle, as ``min_idle``)
        self.opening_with = 0

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

    def _call_ended(self, worker: Worker) -> None:
        """*worker*'s call ended: measure it (the first call of a worker, its warm-up)."""
        if self.several:
            kind = worker.kind
            elapsed = anyio.current_time() - worker.busy_since
            usual = self.call_time.get(kind)
            if worker.tasks == 1 and usual:  # a new worker's first call
                self.warm_cost.add(kind, max(0.0, elapsed - usual))
            self.call_time.add(kind, elapsed)

    def _replacements(self, now: float) -> dict[str, int]:
        """The workers to replace now, per kind (none before ``replace_due``)."""
        if now < self.replace_due:
            return {}
        return self.replace

    def _replace_check(self, now: float) -> float:
        """When the watcher must look again for replacements not yet due."""
        if now < self.replace_due and any(self.replace.values()):
            return self.replace_due
        return math.inf

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
                waiting=self.waiters.asked.get(kind, 0),
                head_wait=heads.get(kind, 0.0),
                demand=self.demand.average(kind, now),
                start_cost=self.start_cost.get(kind) + self.warm_cost.get(kind),
                since_used=math.inf if used is None else now - used,
                replace=replace.get(kind, 0),
                # callers that take no other kind pin their kind
                spill=None if self.waiters.pinned.get(kind) else self.spills.get(kind),
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

    def _starving(self) -> bool:
        """Does a caller wait that no worker of the pool could serve?"""
        for kind, count in self.waiters.asked.items():
            if not count or self.live_count.get(kind):
                continue
            other = self.spills.get(kind)
            if (
                self.waiters.pinned.get(kind)
                or other is None
                or not self.live_count.get(other)
            ):
                return True
        return False


class Demand:
    """The callers of each kind in a pool (waiting or running), averaged over time.

    An exponential moving average over :data:`DEMAND_WINDOW` seconds, weighted by
    time: :meth:`change` is called whenever a caller comes or goes.
    """

    __slots__ = ("_at", "_average", "_count", "window")

    def __init__(self, kinds: tuple[str, ...], window: float = DEMAND_WINDOW) -> None:
        self.window = window
        self._count = dict.fromkeys(kinds, 0)
        self._average = dict.fromkeys(kinds, 0.0)
        self._at = dict.fromkeys(kinds, 0.0)

    def _settle(self, kind: str, now: float) -> None:
        elapsed = now - self._at[kind]
        if elapsed > 0:
            weight = 1.0 - math.exp(-elapsed / self.window)
            self._average[kind] += weight * (self._count[kind] - self._average[kind])
            self._at[kind] = now

    def change(self, kind: str, delta: int, now: float) -> None:
        """*delta* callers of *kind* came (positive) or went (negative) at *now*."""
        if kind not in self._count:
            self._count[kind] = 0
            self._average[kind] = 0.0
            self._at[kind] = now
        self._settle(kind, now)
        self._count[kind] = max(0, self._count[kind] + delta)

    def average(self, kind: str, now: float) -> float:
        """The average number of callers of *kind* up to *now*."""
        if kind not in self._count:
            return 0.0
        self._settle(kind, now)
        return self._average[kind]

    def move(self, old: str, new: str, now: float) -> None:
        """Callers of *old* now wait for *new* (a kind the pool dropped)."""
        count = self._count.get(old, 0)
        self.change(old, -count, now)
        self.change(new, count, now)


class Average:
    """An exponential moving average per kind (start costs, call times)."""

    __slots__ = ("_values", "weight")

    def __init__(self, initial: Mapping[str, float], weight: float) -> None:
        self._values = dict(initial)
        #: the weight of a new sample
        self.weight = weight

    def add(self, kind: str, value: float) -> None:
        """A new sample *value* of *kind*."""
        old = self._values.get(kind)
        if old is None or old <= 0:
            self._values[kind] = value
        else:
            self._values[kind] = old + self.weight * (value - old)

    def get(self, kind: str) -> float:
        """The average of *kind* (0.0 before a sample)."""
        return self._values.get(kind, 0.0)
