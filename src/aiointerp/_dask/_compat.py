"""The Dask internals that :mod:`aiointerp.dask` relies on, in one place.

Everything here depends on how ``distributed`` works inside, not on its documented
API; each helper says what it relies on, and ``tests/integrations/test_dask.py`` checks each one
against the installed ``distributed``. The supported range is pinned by the ``dask``
extra (:data:`SUPPORTED`). When a future version changes one of these, the code
degrades loudly (a warning or a clear error), never silently.

What is relied on:

* An ``async def`` task runs on the worker's event loop inside the asyncio task that
  ``BaseWorker.handle_stimulus`` creates for its ``Execute`` instruction, named
  ``execute(<repr of the key>)``: :func:`execute_task_name` and
  :func:`current_task_name` connect a running call to its key.
* ``WorkerState`` notifies ``WorkerPlugin.transition(key, start, finish)`` with the
  *requested* finish state: a running task that the scheduler releases (cancelled,
  or its last future dropped) shows as ``executing -> released`` although its state
  becomes ``cancelled``; it shows ``cancelled -> ...`` once the code has returned,
  and ``cancelled -> waiting`` if it is wanted again before (:data:`RELEASED_WHILE_RUNNING`,
  :data:`ENDED_AFTER_RELEASE`).
* Dask's sampling profiler: the ``profile`` and ``profile-cycle`` periodic callbacks
  of each worker, the ``call_stack`` handler, and one ``Profile`` thread per event
  loop started by the first ``Server`` when ``distributed.worker.profile.enabled``
  is true; all call :func:`sys._current_frames`.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TYPE_CHECKING, Any, Final

from .._seam import sampling_may_crash, sampling_verified_safe

if TYPE_CHECKING:
    from distributed import Worker

__all__ = [
    "ENDED_AFTER_RELEASE",
    "PROFILER_CRASHES",
    "RELEASED_WHILE_RUNNING",
    "SUPPORTED",
    "current_task_name",
    "disable_profiling_config",
    "execute_task_name",
    "loop_profiler_running",
    "profiler_error",
    "stop_worker_profiler",
]

#: The ``distributed`` versions whose internals this module was checked against.
SUPPORTED: Final = "distributed>=2025.1,<2027"

#: ``(start, finish)`` of the plugin notification when a running task is released.
RELEASED_WHILE_RUNNING: Final = frozenset(
    {("executing", "released"), ("long-running", "released")}
)
#: ``start`` states of the notifications that end a released task's story on the
#: worker: its code returned (``cancelled -> memory/error/rescheduled/released``) or
#: it is wanted again (``cancelled -> waiting``, ``resumed -> ...``).
ENDED_AFTER_RELEASE: Final = frozenset({"cancelled", "resumed"})


def execute_task_name(key: object) -> str:
    """The name of the asyncio task in which a worker runs the task ``key``."""
    return f"execute({key!r})"


def current_task_name() -> str | None:
    """The name of the running asyncio task, if it is one of Dask's execute tasks."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop
        return None
    if task is None:
        return None
    name = task.get_name()
    return name if name.startswith("execute(") and name.endswith(")") else None


# -- the sampling profiler ---------------------------------------------------------

#: ``sys._current_frames()``, which Dask's profiler calls, aborts CPython 3.13.0 while
#: another interpreter runs code; releases not verified to survive it count as well
#: (:func:`aiointerp._host._defects.sampling_may_crash`).
PROFILER_CRASHES: Final = sampling_may_crash()

_PROFILE_CALLBACKS: Final = ("profile", "profile-cycle")
_CONFIG: Final = "distributed.worker.profile.enabled"


def disable_profiling_config() -> None:
    """Turn Dask's profiler off for workers and schedulers created from now on.

    Set in this process's Dask configuration; a :class:`~distributed.Nanny` passes it
    to the worker processes it starts.
    """
    import dask.config

    dask.config.set({_CONFIG: False})


def stop_worker_profiler(worker: Worker) -> None:
    """Stop the worker's periodic profiler callbacks and its ``call_stack`` handler."""
    for name in _PROFILE_CALLBACKS:
        callback = worker.periodic_callbacks.pop(name, None)
        if callback is not None:
            callback.stop()
    if "call_stack" in worker.handlers:
        worker.handlers["call_stack"] = _no_call_stack


def _no_call_stack(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    """Replaces ``Worker.get_call_stack`` where it would crash the process."""
    return {}


def loop_profiler_running() -> bool:
    """Whether Dask's event-loop profiler thread runs in this process."""
    from distributed import profile

    watch = getattr(profile, "_watch", None)
    for thread in threading.enumerate():
        if thread.name != "Profile" or not thread.is_alive():
            continue
        target = getattr(thread, "_target", None)
        if watch is None or target is None or target is watch:
            return True
    return False


def profiler_error() -> RuntimeError:
    """The error raised where Dask's profiler would crash a process running interpreters."""
    version = sys.version.split()[0]
    return RuntimeError(
        f"Dask's sampling profiler runs in this worker process, and on Python {version} "
        "it may crash the process while subinterpreters run (3.13.0 does; "
        f"{sampling_verified_safe()} were verified not to). Start the workers "
        "with the profiler off: "
        "import aiointerp.dask before creating a LocalCluster (it turns the profiler "
        "off on this Python), or set DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False "
        "in the environment of `dask worker`, or upgrade Python."
    )
