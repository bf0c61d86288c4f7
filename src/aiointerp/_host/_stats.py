"""Pool statistics."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PoolStats"]


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A consistent snapshot of an :class:`~aiointerp.InterpreterPool`.

    Gauges describe the instant of the snapshot (``workers == idle + busy + starting
    + quarantined + retiring``); counters only grow over the pool's life.

    :ivar max_workers: the capacity: at most this many interpreters exist at once
    :ivar workers: live interpreters, in any state (gauge)
    :ivar idle: ready and waiting for a call (gauge)
    :ivar busy: running a call (gauge)
    :ivar starting: being created or initialised (gauge)
    :ivar quarantined: abandoned after a cancel, still running user code that
        could not be interrupted; they hold their capacity slot (gauge)
    :ivar retiring: being destroyed (retired for idleness, age, an interrupt, a
        broken state, or the pool closing) (gauge)
    :ivar waiting: callers queued for a worker (gauge)
    :ivar created: interpreters created (counter)
    :ivar retired: interpreters destroyed, for any reason (counter); one whose
        code could not be stopped at shutdown is not counted
    :ivar completed: calls that returned a result (counter)
    :ivar failed: calls that raised (user exceptions and broken workers) (counter)
    :ivar cancelled: calls cancelled by the caller, queued or running (counter)
    :ivar timed_out: calls that hit their ``timeout=`` (counter)
    :ivar abandoned: running calls that did not stop within ``cancel_grace`` (counter)
    :ivar shed: calls refused at once with :class:`~aiointerp.PoolBusyError`
        because ``max_waiting`` callers waited (counter)
    :ivar interpreters: live workers that are subinterpreters (gauge)
    :ivar processes: live workers that are child processes (gauge);
        ``workers == interpreters + processes``
    """

    __module__ = "aiointerp"

    max_workers: int
    workers: int
    idle: int
    busy: int
    starting: int
    quarantined: int
    retiring: int
    waiting: int
    created: int
    retired: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int
    abandoned: int
    shed: int = 0
    interpreters: int = 0
    processes: int = 0
