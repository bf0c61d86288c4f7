"""Process exit: stop the workers that no pool closed, and never hang in silence.

Host side. CPython joins every non-daemon thread before it finalizes, and a worker's
thread cannot be a daemon (it must destroy its own interpreter before it ends). Pools
are normally closed with their event loops long before exit; workers still alive
then (abandoned code, a loop that died without closing its pool) are stopped by
:func:`_at_exit`, which :mod:`threading` runs before it joins the threads.

Workers are registered here while they own file descriptors: the hook never writes
to a closed fd, nor to a reused one.

A worker that does not stop keeps the process alive until its code returns: the
hook says so, then waits. Ctrl-C during that wait ends the process at once: one line
on stderr names what is left running (no traceback), and the process dies of SIGINT
as Python does on an uncaught KeyboardInterrupt (the shell reports status 130;
where a process cannot die of a signal, it exits with status 130).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Final, Protocol

__all__ = ["ExitWorker", "register", "unregister"]

logger = logging.getLogger("aiointerp")

#: seconds process exit waits, in all, for workers to stop before saying why it waits
EXIT_DEADLINE = 5.0
#: exit status where the process cannot die of SIGINT: 128 + SIGINT, as shells report
INTERRUPTED_STATUS: Final = 130

_WAITING: Final = (
    "process exit is waiting for %r, still running %s, which did not stop when "
    "interrupted: it is in a call that cannot be interrupted (a C call, time.sleep, "
    "blocking I/O) or it caught aiointerp.Interrupted (except BaseException:, a bare "
    "except:) and carried on. It must return first; Ctrl-C ends the process at once, "
    "without its cleanup"
)


class ExitWorker(Protocol):
    """What the exit hook needs of a worker, whatever runs it (a thread, a process)."""

    @property
    def job_label(self) -> str:
        """The call in flight, for messages (``""``: none, or the initializer)."""
        ...

    def stop_at_exit(self) -> None:
        """Interrupt the call in flight and tell the worker to quit; never blocks.

        Called with the registry's lock held: the worker is registered, so its fds
        are open (:func:`unregister` comes before they are closed).
        """
        ...

    def join(self, timeout: float | None) -> None:
        """Wait until the worker has ended, or *timeout* seconds (``None``: no limit).

        Returns at once for a worker that was never started.
        """
        ...

    @property
    def alive(self) -> bool:
        """Whether the worker still runs (its code, or its own clean-up); it stops
        being alive when it ends, as :meth:`join` sees."""
        ...

    def kill(self) -> bool:
        """Kill the worker at once if its kind can (a process); else ``False``."""
        ...


_live: set[ExitWorker] = set()
# The hook writes to the workers (to interrupt and stop them) with this lock held,
# and unregister() takes it: a worker closing its fds on another thread (a reaper)
# waits until the hook is done writing.
_lock = threading.Lock()


def register(worker: ExitWorker) -> None:
    """Stop *worker* at process exit; call it before the worker starts.

    :param worker: a worker whose fds are open
    """
    with _lock:
        _live.add(worker)


def unregister(worker: ExitWorker) -> None:
    """Forget *worker*; call it *before* closing its fds (from any thread).

    Waits while the exit hook is writing to registered workers. Idempotent.

    :param worker: a worker given to :func:`register`, or not
    """
    with _lock:
        _live.discard(worker)


def _at_exit() -> None:
    """Stop the registered workers and wait for them; Ctrl-C ends the process now."""
    workers: list[ExitWorker] = []
    try:
        with _lock:  # released by an exception too
            workers.extend(_live)
            for worker in workers:
                worker.stop_at_exit()
        _wait(workers)
    except KeyboardInterrupt:
        for worker in workers:  # a child that died meanwhile is reaped: not alive
            worker.join(0)
        _exit_now([worker for worker in workers if worker.alive])


def _wait(workers: list[ExitWorker]) -> None:
    deadline = time.monotonic() + EXIT_DEADLINE
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    # a process can be killed; an interpreter's code must return first
    stuck = [w for w in workers if w.alive and not (w.kill() and _reaped(w))]
    for worker in stuck:
        logger.warning(_WAITING, worker, _label(worker))
    for worker in stuck:
        worker.join(None)  # here rather than in threading: Ctrl-C lands in the hook


def _reaped(worker: ExitWorker) -> bool:
    worker.join(1.0)  # a killed process ends at once
    return not worker.alive


def _label(worker: ExitWorker) -> str:
    return worker.job_label or "its initializer"


def _exit_now(running: list[ExitWorker]) -> None:
    """End the process at once, saying which code is left running (no traceback)."""
    if running:
        left = ", ".join(f"{worker!r} (running {_label(worker)})" for worker in running)
        _write(
            f"aiointerp: Ctrl-C during process exit: exiting without waiting for "
            f"{left}; its cleanup does not run\n"
        )
    for stream in (sys.stdout, sys.stderr):  # os._exit and a signal skip the flush
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # closed, broken pipe
            pass
    _die()


def _write(text: str) -> None:
    stream: Any = sys.stderr
    try:
        if stream is not None:
            stream.write(text)
    except Exception:  # closed, broken pipe
        pass


def _die() -> None:
    if os.name == "posix":
        try:  # as Python on KeyboardInterrupt: the parent sees a death by SIGINT
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.raise_signal(signal.SIGINT)
        except (ValueError, OSError):  # not the main thread or interpreter
            pass
    os._exit(INTERRUPTED_STATUS)


_register_atexit: Any = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:  # before threading joins the threads
    _register_atexit(_at_exit)
else:  # pragma: no cover - every supported CPython (3.13+) has _register_atexit
    import atexit

    atexit.register(_at_exit)
