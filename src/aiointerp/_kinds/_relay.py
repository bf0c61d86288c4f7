"""The host's handling of what a worker forwards: log records, warnings, output.

A worker queues them on its link, and signals ``LOG`` when the host is to take
them; :class:`Relay` hands them to the host's logging and streams
(:func:`aiointerp._kinds._forwarded.handle`), on the event loop, in slices that give the
loop a turn whenever :data:`FORWARD_SLICE` was spent, so a backlog never stalls it.
The items a worker queued before an outcome (or before it ended) are *owed*: they
are handed over before that outcome is, and none is lost to a cancellation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from anyio.lowlevel import checkpoint

from . import _forwarded

__all__ = ["FORWARD_SLICE", "Relay"]

#: Forwarded items are handed to the host's logging and streams on the event loop,
#: in slices: after this much time spent on them (seconds), the loop gets a turn.
FORWARD_SLICE = 0.002
#: log items taken from a worker's link at a time
_FORWARD_BATCH = 64


class _Queue(Protocol):
    """What the relay needs of a worker's link."""

    def logs_queued(self) -> int: ...
    def take_logs(self, limit: int) -> list[Any]: ...


class Relay:
    """Hands one worker's forwarded items to the host (see the module doc)."""

    __slots__ = ("_link", "_owed", "_time", "enabled")

    def __init__(self, link: _Queue, enabled: bool) -> None:
        self._link = link
        #: the worker forwards anything at all (logging, warnings or output)
        self.enabled = enabled
        #: items queued before an outcome or the worker's end, still to hand over
        self._owed = 0
        #: seconds spent handing items over since the event loop last had a turn
        self._time = 0.0

    def owe(self) -> bool:
        """What is queued now comes before what the worker signalled last
        (an outcome, its end): it is owed. Whether anything is."""
        self._owed = self._link.logs_queued()
        return bool(self._owed)

    @property
    def owed(self) -> bool:
        """Items are owed (:meth:`owe`) and not all handed over yet."""
        return bool(self._owed)

    async def forward(
        self,
        ident: int | None,
        kind: str,
        *,
        owed: bool = False,
        more: Callable[[], bool] = bool,
    ) -> None:
        """Hand the items queued by worker *ident* of *kind* to the host.

        *owed*: the owed items (those queued before an outcome); else until the queue
        is empty, or *more* says a signal waits (the outcome: a thread that writes
        faster than the host handles must not keep its call from ending).

        The event loop gets a turn only between two items: a cancellation or a
        Ctrl-C there loses none (the rest is handed over next time, before the next
        outcome at the latest).
        """
        if not self.enabled:
            return
        link = self._link
        while True:
            limit = min(self._owed, _FORWARD_BATCH) if owed else _FORWARD_BATCH
            began = time.perf_counter()
            items = link.take_logs(limit)
            if owed:
                self._owed = self._owed - len(items) if items else 0
            for item in items:
                _forwarded.handle(item, ident, kind)
            self._time += time.perf_counter() - began
            if self._time >= FORWARD_SLICE:
                self._time = 0.0
                await checkpoint()
            if owed:
                if not self._owed:
                    return
            elif len(items) < limit or more():
                return
