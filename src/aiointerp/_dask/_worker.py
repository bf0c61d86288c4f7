"""The worker side of :mod:`aiointerp.dask`: the body of every :func:`in_interpreter`
task, and :class:`InterpreterPlugin` (public in :mod:`aiointerp.dask`).

Importing it needs ``distributed``: import :mod:`aiointerp.dask`, which says so when
it is missing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Final, Unpack, cast

import anyio
import distributed
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol import pickle as dask_pickle

from .. import BrokenWorkerError, NotShareableError, PoolClosedError
from .._api import current_default_pool
from .._pool import InterpreterPool
from .._seam import PoolOptions, not_loaded_by, reusable
from . import _compat

logger = logging.getLogger("aiointerp.dask")


@functools.lru_cache(maxsize=64)
def load(blob: bytes) -> Callable[..., Any]:
    return cast("Callable[..., Any]", dask_pickle.loads(blob))  # type: ignore[no-untyped-call]


async def run_on_worker(
    blob: bytes, label: str, timeout: float | None, args: tuple[Any, ...]
) -> Any:
    """The body of every :func:`in_interpreter` task, on the worker's event loop."""
    try:
        worker = distributed.get_worker()
    except ValueError:
        raise RuntimeError(
            f"in_interpreter({label}) made a Dask task: hand it to a Dask client "
            "(client.submit, client.map, dask.delayed); it runs on Dask workers"
        ) from None
    try:
        func = load(blob)
    except Exception as exc:
        exc.add_note(
            f"aiointerp.dask: the Dask worker process {worker.address} could not load "
            f"{label}. The functions of Dask tasks must be importable in every worker "
            "process: install their module there (or send it with client.upload_file)."
        )
        raise
    plugin = _plugin_of(worker)
    if plugin is not None:
        return await plugin._run(func, args, timeout, label, worker.address)
    guard_profiler(worker)
    return await _call(
        current_default_pool(), func, args, timeout, label, worker.address
    )


#: what a pool of each kind passes the calls to, in error notes
_RECIPIENT = {"interpreter": "an isolated interpreter", "process": "a child process"}


async def _call(
    pool: InterpreterPool,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    timeout: float | None,
    label: str,
    address: str,
) -> Any:
    """Run the call in ``pool``; say where errors of aiointerp itself came from."""
    try:
        return await pool.run_sync(func, *args, timeout=timeout)
    except NotShareableError as exc:
        exc.add_note(
            f"aiointerp.dask: on Dask worker {address}: the worker process loaded "
            f"{label}, but it cannot be passed to "
            f"{_RECIPIENT.get(pool._kind, 'its pool')}."
        )
        raise
    except (BrokenWorkerError, PoolClosedError) as exc:
        exc.add_note(f"aiointerp.dask: raised on Dask worker {address}.")
        raise
    except Exception as exc:
        if not_loaded_by(exc, "interpreter"):
            exc.add_note(
                f"aiointerp.dask: on Dask worker {address}: the worker process loaded "
                f"{label}, but its isolated interpreter could not (modules that "
                "import distributed, numpy... cannot be imported there)."
            )
        elif not_loaded_by(exc, "process"):
            exc.add_note(
                f"aiointerp.dask: on Dask worker {address}: the worker process loaded "
                f"{label}, but the pool's worker process could not (its sys.path is "
                "the Dask worker's when the pool started)."
            )
        raise


def _plugin_of(worker: distributed.Worker) -> InterpreterPlugin | None:
    plugin = worker.plugins.get(InterpreterPlugin.name)
    if isinstance(plugin, InterpreterPlugin):
        return plugin
    for plugin in worker.plugins.values():  # registered under another name
        if isinstance(plugin, InterpreterPlugin):
            return plugin
    return None


def guard_profiler(worker: distributed.Worker) -> None:
    """Make sure Dask's profiler cannot crash this process (on the Pythons where it can)."""
    if _compat.PROFILER_CRASHES:
        _compat.stop_worker_profiler(worker)
        if _compat.loop_profiler_running():
            raise _compat.profiler_error()


# -- the worker plugin -------------------------------------------------------------------


class InterpreterPlugin(WorkerPlugin):
    """A Dask worker plugin: one :class:`~aiointerp.InterpreterPool` per worker.

    Register it once (``client.register_plugin(InterpreterPlugin())``); workers that
    join later get it too. On each worker, :meth:`setup` opens a pool on the worker's
    event loop, which :func:`in_interpreter` tasks use; :meth:`teardown` (the worker
    closes, or the plugin is unregistered) closes it.

    :param max_workers: interpreters (or processes) per worker; default: the
        worker's thread count (``nthreads``), which is also how many tasks Dask runs
        at once on it
    :param kind: what runs the calls on each worker, as for
        :class:`~aiointerp.InterpreterPool`: ``"interpreter"`` (the default:
        subinterpreters of the worker process) or ``"process"`` (warm child
        processes of the worker process, where every extension module loads, numpy
        and pydantic included; a call that does not stop within ``cancel_grace``
        after it was interrupted is killed with its process, and the Dask thread
        slot freed at once)
    :param pool_options: the other options of :class:`~aiointerp.InterpreterPool`,
        every one of them (``min_idle``, ``idle_timeout``, ``max_tasks_per_worker``,
        ``initializer``, ``initargs``, ``cancel_grace``, ``forward_logging``,
        ``max_waiting``, ``forward_output``, ``preload``); they are checked here,
        and must pickle (``initargs`` and ``preload`` are kept as tuples)
    :raises ValueError: an option is out of range, or ``kind`` is unknown

    .. rubric:: Cancellation

    When the scheduler releases a task that is running in one of the pool's
    interpreters (``client.cancel``, its last future dropped, ``client.restart``...),
    the plugin cancels the call: the code is interrupted as for
    :meth:`~aiointerp.InterpreterPool.run_sync` and the Dask thread slot is free once
    it stopped, or after ``cancel_grace`` (then the interpreter is abandoned and
    replaced when its code returns; a process is killed). A task released before it
    started never runs. If the scheduler asks for the same key again meanwhile, the
    interrupted task is rescheduled. Closing the worker interrupts its running calls
    (Dask reschedules them elsewhere); unregistering the plugin interrupts them and
    fails them with :class:`~aiointerp.PoolClosedError`.

    .. rubric:: Dask's profiler

    On CPython 3.13.0, :func:`sys._current_frames` aborts a process in which
    subinterpreters run, and Dask's sampling profiler calls it; the releases not
    verified to survive it (3.13 before 3.13.18, 3.14 before 3.14.10, 3.15 before
    3.15.2) are treated the same. There, :meth:`setup` stops the worker's profiler, and
    refuses (:class:`RuntimeError`, raised by ``client.register_plugin``) if the
    event-loop profiler thread of that process runs, saying how to start the workers
    without it. Importing :mod:`aiointerp.dask` turns the profiler off in the Dask
    configuration of the importing process, which covers a ``LocalCluster`` created
    afterwards. On other Pythons, and with ``kind="process"`` (no subinterpreter runs
    in the worker process), :meth:`setup` leaves the profiler on.
    """

    __module__ = "aiointerp.dask"

    #: The name the plugin registers under unless ``register_plugin`` gets another.
    name: Final = "aiointerp"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        kind: str = "interpreter",
        **pool_options: Unpack[PoolOptions],
    ) -> None:
        pool_options = reusable(pool_options)  # Dask pickles it to each worker
        # validate the options now, not on the workers; without max_workers (the
        # worker's nthreads, unknown here) any min_idle may fit
        fits = max(1, pool_options.get("min_idle") or 0)
        InterpreterPool(
            fits if max_workers is None else max_workers, kind=kind, **pool_options
        )
        self._max_workers = max_workers
        self._kind = kind
        self._options = pool_options
        self._reset()

    def _reset(self) -> None:
        self._pool: InterpreterPool | None = None
        self._error: BaseException | None = None
        self._running: dict[str, anyio.CancelScope] = {}
        self._released: set[str] = set()  # released before their call started

    def __getstate__(self) -> dict[str, Any]:
        return {
            "max_workers": self._max_workers,
            "kind": self._kind,
            "options": self._options,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._max_workers = state["max_workers"]
        self._kind = state["kind"]
        self._options = state["options"]
        self._reset()

    def __repr__(self) -> str:
        return (
            f"InterpreterPlugin(max_workers={self._max_workers!r}, kind={self._kind!r})"
        )

    @property
    def pool(self) -> InterpreterPool | None:
        """The worker's pool, between :meth:`setup` and :meth:`teardown` (else ``None``)."""
        return self._pool

    async def setup(self, worker: distributed.Worker) -> None:
        """Open the worker's pool (called by Dask on the worker's event loop).

        :raises RuntimeError: Dask's profiler would crash this worker (see above)
        """
        if self._kind != "process":  # processes: no subinterpreter in this one
            try:
                guard_profiler(worker)
            except RuntimeError as exc:
                self._error = exc
                raise
        max_workers = self._max_workers or worker.state.nthreads
        pool = InterpreterPool(max_workers, kind=self._kind, **self._options)
        await pool.__aenter__()
        self._pool = pool
        self._error = None

    async def teardown(self, worker: distributed.Worker) -> None:
        """Close the worker's pool: running calls are interrupted (called by Dask)."""
        pool, self._pool = self._pool, None
        self._error = PoolClosedError(
            f"the InterpreterPlugin of Dask worker {worker.address} was removed"
        )
        if pool is not None:
            await pool.aclose(timeout=0)

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        """Interrupt the call of a running task that the scheduler released."""
        if start in _compat.ENDED_AFTER_RELEASE:
            if self._released:
                self._released.discard(_compat.execute_task_name(key))
            return
        if (start, finish) not in _compat.RELEASED_WHILE_RUNNING:
            return
        name = _compat.execute_task_name(key)
        scope = self._running.get(name)
        if scope is not None:
            scope.cancel()
        else:  # not started yet, or not a call of ours: tell the call if it starts
            self._released.add(name)

    async def _run(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        timeout: float | None,
        label: str,
        address: str,
    ) -> Any:
        pool = self._pool
        if pool is None:
            raise self._error or PoolClosedError(
                f"the InterpreterPlugin of Dask worker {address} is not set up"
            )
        name = _compat.current_task_name()
        if name is None:
            _warn_untracked(label)
            return await _call(pool, func, args, timeout, label, address)
        if name in self._released:  # released before it started: do not run it
            self._released.discard(name)
            raise distributed.Reschedule()
        scope = anyio.CancelScope()
        self._running[name] = scope
        try:
            with scope:
                return await _call(pool, func, args, timeout, label, address)
        finally:
            del self._running[name]
        # the scheduler released the task and the code was interrupted: nobody waits
        # for a result; if the key was requested again meanwhile, Dask reschedules it
        raise distributed.Reschedule()


@functools.cache
def _warn_untracked(label: str) -> None:
    logger.warning(
        "aiointerp.dask: %s does not run in a Dask execute task as expected by this "
        "version of aiointerp (supported: %s); cancelling it will not interrupt it",
        label,
        _compat.SUPPORTED,
    )
