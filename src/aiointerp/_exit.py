"""Process exit: stop the workers that no pool closed, before the interpreter exits.

Host side. Every launched worker registers here until its resources are released.
The hook runs before :mod:`threading` joins the worker threads (which CPython
requires to end before it can destroy their interpreters). A worker stuck in code
that cannot be interrupted keeps the process alive until that code returns; it is
reported instead of hanging silently.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

__all__ = ["register", "unregister"]

logger = logging.getLogger("aiointerp")

#: How long process exit waits for workers still running when the interpreter exits.
EXIT_DEADLINE = 5.0


class ExitingWorker(Protocol):
    """What the hook needs of a worker."""

    job_label: str

    def stop_at_exit(self) -> None: ...
    def join(self, timeout: float) -> None: ...
    def is_alive(self) -> bool: ...


_live: set[ExitingWorker] = set()
#: held while a worker is told to stop at exit, and while one releases its fds
_lock = threading.Lock()


def register(worker: ExitingWorker) -> None:
    with _lock:
        _live.add(worker)


def unregister(worker: ExitingWorker) -> None:
    """*worker* is about to close its fds: the hook must not write to them after."""
    with _lock:
        _live.discard(worker)


def _at_exit() -> None:
    with _lock:
        workers = list(_live)
        for worker in workers:
            worker.stop_at_exit()
    deadline = time.monotonic() + EXIT_DEADLINE
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            logger.warning(
                "process exit is waiting for %r, still running %s: code that cannot be "
                "interrupted (a C call, time.sleep, blocking I/O) must return first",
                worker,
                worker.job_label or "its initializer",
            )


_register_atexit: Any = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(_at_exit)
else:  # pragma: no cover
    import atexit

    atexit.register(_at_exit)
