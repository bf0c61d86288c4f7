"""The callers waiting for a worker of a pool: first come, first served.

A :class:`Waiter` is one caller; :class:`Waiters` is the pool's queue of them, which
keeps, per kind, how many callers a worker of that kind would serve (those that
asked for it, and those that spill to it), so that a freed worker finds its caller
without a scan when none waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

import anyio

from .._kinds._worker import Worker

__all__ = ["Waiter", "Waiters"]


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
        #: the worker handed to it, or the error it is to raise (then ``event`` is set)
        self.worker: Worker | None = None
        self.error: BaseException | None = None


class Waiters:
    """The waiting callers of one pool, in their order of arrival, counted per kind."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self._queue: deque[Waiter] = deque()
        #: callers waiting that a worker of a kind would serve, per kind
        self.waiting: dict[str, int] = dict.fromkeys(kinds, 0)
        #: callers waiting for a worker of a kind they asked for, per kind, and of
        #: those, the ones that take no other kind
        self.asked: dict[str, int] = dict.fromkeys(kinds, 0)
        self.pinned: dict[str, int] = dict.fromkeys(kinds, 0)

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterator[Waiter]:
        return iter(self._queue)

    def _count(self, waiter: Waiter, delta: int) -> None:
        kind, spill = waiter.kind, waiter.spill
        self.waiting[kind] = self.waiting.get(kind, 0) + delta
        self.asked[kind] = self.asked.get(kind, 0) + delta
        if spill is None:
            self.pinned[kind] = self.pinned.get(kind, 0) + delta
        else:
            self.waiting[spill] = self.waiting.get(spill, 0) + delta

    def append(self, waiter: Waiter) -> None:
        """*waiter* waits, behind those already waiting."""
        self._queue.append(waiter)
        self._count(waiter, 1)

    def remove(self, waiter: Waiter) -> None:
        """*waiter* waits no more (it was served, failed or cancelled)."""
        self._queue.remove(waiter)
        self._count(waiter, -1)

    def first(self, kind: str) -> Waiter | None:
        """Take the first caller that a worker of *kind* serves off the queue."""
        if not self.waiting.get(kind):
            return None
        # the count says one waits: next() finds it
        waiter = next(w for w in self._queue if kind in (w.kind, w.spill))
        self.remove(waiter)
        return waiter

    def fail_all(self, error: BaseException) -> None:
        """Every waiting caller raises *error*; none waits any more."""
        while self._queue:
            waiter = self._queue.popleft()
            self._count(waiter, -1)
            waiter.error = error
            waiter.event.set()

    def unserved(self, kind: str, serving: Callable[[str], bool]) -> Waiter | None:
        """The first caller asking for *kind* that no worker serves, or will.

        :param serving: whether a worker of a kind serves (or will serve) callers
        """
        if serving(kind):
            return None
        for waiter in self._queue:
            if waiter.kind == kind and (
                waiter.spill is None or not serving(waiter.spill)
            ):
                return waiter
        return None

    def drop_kind(self, kind: str, instead: str) -> None:
        """Callers waiting for *kind* (no longer run) wait for *instead*."""
        for waiter in self._queue:
            self._count(waiter, -1)
            if waiter.kind == kind:
                waiter.kind = instead
            if waiter.spill == kind or waiter.spill == waiter.kind:
                waiter.spill = None
            self._count(waiter, 1)
