"""Functions that tests/integrations/test_dask.py runs as Dask tasks, and probes of Dask workers.

Importable by Dask worker processes and inside isolated interpreters: stdlib and
:mod:`aiointerp.worker` only, never ``distributed`` (the probes receive the worker
object from ``client.run`` and import nothing of Dask). Handshakes go through named
pipes (FIFOs), which work across processes and interpreters: opening one for writing
blocks until the test has it open for reading.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def pid() -> int:
    """The process the call runs in (a child of the Dask worker with kind="process")."""
    return os.getpid()


def count_primes(start: int, stop: int) -> int:
    """Pure-Python CPU work."""
    count = 0
    for n in range(max(start, 2), stop):
        for d in range(2, int(n**0.5) + 1):
            if n % d == 0:
                break
        else:
            count += 1
    return count


class Boom(Exception):
    pass


def fail(message: str) -> None:
    raise Boom(message)


def signal(fifo: str, text: str) -> None:
    """Write ``text`` to the FIFO the test reads (blocks until it is open there)."""
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def spin(started: str, stopped: str) -> None:
    """Loop until interrupted; say so on ``started``, and from ``finally`` on ``stopped``."""
    try:  # entered first: an interrupt may come as soon as "started" is written
        signal(started, "started")
        while time.monotonic() > 0:
            pass
    finally:
        signal(stopped, "stopped")


def work_for(seconds: float) -> int:
    """CPU work for about ``seconds``; returns the loop count."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


async def task_name() -> str:
    """An async Dask task (not in an interpreter): the name of the asyncio task it runs in."""
    task = asyncio.current_task()
    assert task is not None
    return task.get_name()


# -- probes run with client.run(probe) on each worker -----------------------------------


def pool_stats(dask_worker: Any) -> tuple[int, int, int, int, int]:
    """(busy, completed, failed, cancelled, abandoned) of the plugin's pool."""
    stats = dask_worker.plugins["aiointerp"].pool.stats()
    return stats.busy, stats.completed, stats.failed, stats.cancelled, stats.abandoned


def profiler_state(dask_worker: Any) -> tuple[bool, bool, int]:
    """(a Profile thread runs, the worker's profile callbacks exist, pid)."""
    thread = any(t.name == "Profile" for t in threading.enumerate())
    callbacks = "profile" in dask_worker.periodic_callbacks
    return thread, callbacks, os.getpid()


def live_interpreters(dask_worker: Any) -> int:
    """Interpreters of this worker process besides the main one."""
    from aiointerp._wire import _interp

    return len(_interp.live_ids()) - 1
