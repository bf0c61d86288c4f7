"""Dask distributed: run Dask tasks in subinterpreters, with cancels that stop the code.

Three names, each usable alone::

    from distributed import Client, LocalCluster
    from aiointerp.dask import DaskPool, InterpreterPlugin, in_interpreter

    client = Client(LocalCluster(n_workers=2, threads_per_worker=4))
    client.register_plugin(InterpreterPlugin())        # one InterpreterPool per worker
    futures = client.map(in_interpreter(crunch), chunks)
    client.cancel(futures[0])                          # interrupts the running code

* :func:`in_interpreter` turns a sync function into a Dask task that runs in an
  interpreter of its worker: plain Dask (``submit``, ``map``, ``delayed``) schedules it;
  all of a worker's threads run Python in parallel in one process.
* :class:`InterpreterPlugin` gives each worker its own :class:`~aiointerp.InterpreterPool`
  and turns Dask's cancel or release of a running task into an interrupt of its code
  (Dask alone lets it run to the end).
* :class:`DaskPool` offers the :class:`~aiointerp.InterpreterPool` calls (``run_sync``,
  ``map``) over a whole cluster, from asyncio or trio.

How it works: an ``async def`` Dask task runs on its worker's event loop (since
distributed 2021.08), where it awaits :meth:`InterpreterPool.run_sync`; the plugin
sees the scheduler release a running task (``WorkerPlugin.transition``) and cancels
that await, which interrupts the code. The Dask internals this relies on are kept in
:mod:`aiointerp._dask_compat`.

Importing this module imports ``distributed`` (``pip install distributed``, or
``pip install '.[dask]'`` in a clone of aiointerp), and raises
:class:`ModuleNotFoundError` saying so when it is not installed; ``import aiointerp``
never does. On Pythons where :func:`sys._current_frames` crashes
a process that runs subinterpreters (3.13.0; releases not verified to survive it: 3.13
before 3.13.18, 3.14 before 3.14.10), it also
turns Dask's sampling profiler off in this process's Dask configuration, for the
clusters created afterwards (see :class:`InterpreterPlugin`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    TypedDict,
    TypeVar,
    TypeVarTuple,
    Unpack,
    cast,
)

import anyio
import anyio.abc
import sniffio

try:
    import distributed
except ModuleNotFoundError as exc:
    if exc.name not in ("distributed", "dask"):  # installed, but broken: as it is
        raise
    raise ModuleNotFoundError(
        f"aiointerp.dask needs Dask's distributed package ({exc.name} is not "
        "installed): pip install distributed (in a clone of aiointerp, pip install "
        "'.[dask]' installs the versions it was tested with)",
        name=exc.name,
    ) from exc
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol import pickle as dask_pickle

from . import _dask_compat
from ._api import current_default_pool
from ._host._stats import PoolStats
from ._host._validate import reject_async
from ._inside._loop import _LOAD_NOTE
from ._kinds._backends import thread_safe_call_soon
from ._pool import InterpreterPool
from ._wire._encoding import describe
from ._wire._errors import BrokenWorkerError, NotShareableError, PoolClosedError

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["DaskPool", "InterpreterPlugin", "in_interpreter"]

logger = logging.getLogger("aiointerp.dask")

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")

if _dask_compat.PROFILER_CRASHES:
    _dask_compat.disable_profiling_config()


class _PoolOptions(TypedDict, total=False):
    """The options of :class:`~aiointerp.InterpreterPool` besides ``max_workers``
    and ``kind`` (parameters of :class:`InterpreterPlugin` of their own).

    All the others, in its order (tests/integrations/test_dask.py compares them).
    """

    min_idle: int
    idle_timeout: float | None
    max_tasks_per_worker: int | None
    initializer: Callable[..., object] | None
    initargs: Iterable[Any]
    cancel_grace: float
    forward_logging: bool
    max_waiting: int | None
    forward_output: bool
    preload: Iterable[str]


# -- in_interpreter --------------------------------------------------------------------


def in_interpreter(
    func: Callable[[Unpack[PosArgsT]], T], /, *, timeout: float | None = None
) -> Callable[[Unpack[PosArgsT]], Coroutine[Any, Any, T]]:
    """Make a Dask task of ``func`` that runs ``func(*args)`` in a subinterpreter.

    The result is an ``async`` function with ``func``'s name (the name Dask shows in
    its dashboard and uses for task keys). Dask runs it on the worker's event loop,
    where it runs ``func(*args)`` in an interpreter of the worker's
    :class:`InterpreterPlugin` pool, or else of the default pool of the worker's
    event loop (:func:`~aiointerp.current_default_pool`). Use it wherever Dask takes
    a function: ``client.submit(in_interpreter(f), x)``,
    ``client.map(in_interpreter(f), xs)``, ``dask.delayed(in_interpreter(f))(x)``.
    Keyword arguments go through :func:`functools.partial`.

    ``func`` is pickled here, once, and loaded by the worker when the task runs, so a
    worker that cannot import it fails the task with an error that says so (instead
    of Dask's hang on a task it cannot read). Inside the worker, ``func`` is sent to
    an isolated interpreter as with :meth:`~aiointerp.InterpreterPool.run_sync`: it
    must be importable there too, and must not need ``distributed`` (which cannot be
    imported in an isolated interpreter).

    :param func: a synchronous function that Dask workers and isolated interpreters
        can import (module level), or that pickles by value (cloudpickle: functions
        of the ``__main__`` script, lambdas)
    :param timeout: seconds, from the start of the task on its worker, after which
        the code is interrupted and the task fails with :class:`TimeoutError`
    :return: an async function to hand to Dask
    :raises TypeError: ``func`` is a coroutine function or not callable
    :raises ValueError: ``timeout`` is negative

    The task raises what ``func`` raised, with the traceback from inside the
    interpreter as ``__cause__`` (:class:`~aiointerp.RemoteTraceback`). Errors of
    the worker side carry a note that says which part failed: the Dask worker
    process (it could not load ``func``), or the isolated interpreter (it could not
    import ``func``, :class:`~aiointerp.NotShareableError`...).

    Cancellation: with :class:`InterpreterPlugin` on the worker, ``client.cancel``
    of the future, or dropping its last reference, interrupts the running code
    (:class:`~aiointerp.Interrupted` is raised inside it) and frees the worker's
    thread slot once the code stopped (or after the pool's ``cancel_grace``).
    Without the plugin Dask lets the code run to the end. Closing a worker interrupts
    its running calls either way; Dask then reschedules them.
    """
    reject_async(func)
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
    label = describe(func)
    try:
        blob: bytes = dask_pickle.dumps(func)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise NotShareableError(
            f"cannot send {label} to Dask workers: {type(exc).__name__}: {exc}"
        ) from exc

    async def task(*args: Unpack[PosArgsT]) -> T:
        result: T = await _run_on_worker(blob, label, timeout, args)
        return result

    # the name and module Dask shows; not __wrapped__ or __dict__: they would be
    # pickled along and loaded by Dask itself, before the task can explain a failure
    functools.update_wrapper(
        task,
        func,
        assigned=("__module__", "__name__", "__qualname__", "__doc__"),
        updated=(),
    )
    del task.__wrapped__  # type: ignore[attr-defined]
    return task


@functools.lru_cache(maxsize=64)
def _load(blob: bytes) -> Callable[..., Any]:
    return cast("Callable[..., Any]", dask_pickle.loads(blob))  # type: ignore[no-untyped-call]


async def _run_on_worker(
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
        func = _load(blob)
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
    _guard_profiler(worker)
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
        notes = getattr(exc, "__notes__", ())
        if _LOAD_NOTE.format("interpreter") in notes:
            exc.add_note(
                f"aiointerp.dask: on Dask worker {address}: the worker process loaded "
                f"{label}, but its isolated interpreter could not (modules that "
                "import distributed, numpy... cannot be imported there)."
            )
        elif _LOAD_NOTE.format("process") in notes:
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


def _guard_profiler(worker: distributed.Worker) -> None:
    """Make sure Dask's profiler cannot crash this process (on the Pythons where it can)."""
    if _dask_compat.PROFILER_CRASHES:
        _dask_compat.stop_worker_profiler(worker)
        if _dask_compat.loop_profiler_running():
            raise _dask_compat.profiler_error()


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

    #: The name the plugin registers under unless ``register_plugin`` gets another.
    name: Final = "aiointerp"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        kind: str = "interpreter",
        **pool_options: Unpack[_PoolOptions],
    ) -> None:
        # tuples: Dask pickles the plugin to each worker, and the check below
        # would consume an iterator
        if "initargs" in pool_options:
            pool_options["initargs"] = tuple(pool_options["initargs"])
        preload = pool_options.get("preload")
        if preload is not None and not isinstance(preload, str):  # a str: refused
            pool_options["preload"] = tuple(preload)
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
                _guard_profiler(worker)
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
        if start in _dask_compat.ENDED_AFTER_RELEASE:
            if self._released:
                self._released.discard(_dask_compat.execute_task_name(key))
            return
        if (start, finish) not in _dask_compat.RELEASED_WHILE_RUNNING:
            return
        name = _dask_compat.execute_task_name(key)
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
        name = _dask_compat.current_task_name()
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
        _dask_compat.SUPPORTED,
    )


# -- DaskPool ----------------------------------------------------------------------------


class DaskPool:
    """The :class:`~aiointerp.InterpreterPool` calls, run by a Dask cluster.

    ``async with DaskPool(client) as pool``: :meth:`run_sync` and :meth:`map`
    behave as the same methods of :class:`~aiointerp.InterpreterPool` (same
    exceptions, the remote traceback as ``__cause__``, cancellation that stops the
    code), but each call is a Dask task made by :func:`in_interpreter`: it runs in an
    interpreter of a worker of ``client``'s cluster, wherever the scheduler puts it.
    Register :class:`InterpreterPlugin` on the cluster for interrupts.

    Works on asyncio with an asynchronous client (``Client(asynchronous=True)``) of
    the same event loop, and on asyncio or trio with a synchronous client (the default
    ``Client()``, which runs its own event loop in a thread).

    :param client: a connected :class:`distributed.Client`
    :param timeout: the default ``timeout`` of :meth:`run_sync` and :meth:`map`

    .. rubric:: Cancellation

    Cancelling a caller (or its ``timeout``) cancels its Dask future; with the plugin
    on the worker, the running code is interrupted there. The caller gets its
    cancellation (or :class:`TimeoutError`) at once: Dask reports no "stopped"
    event. Leaving the ``async with`` cancels the calls still in flight.
    """

    def __init__(
        self, client: distributed.Client, *, timeout: float | None = None
    ) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
        self._client = client
        self._timeout = timeout
        self._tg: anyio.abc.TaskGroup | None = None
        self._opened = self._closed = False
        self._max_workers = 1
        self._futures: set[distributed.Future[Any]] = set()
        self._last: tuple[object, float | None, Callable[..., Any]] | None = None
        self._completed = self._failed = self._cancelled = self._timed_out = 0

    async def __aenter__(self) -> DaskPool:
        if self._opened:
            raise RuntimeError("a DaskPool can be opened once; create a new one")
        library = sniffio.current_async_library()
        if self._client.asynchronous:
            if library != "asyncio":  # pragma: no cover - Dask itself refuses earlier
                raise RuntimeError(
                    "an asynchronous Dask Client runs on asyncio only; on trio, pass "
                    "a synchronous Client (Client(address)), which runs in a thread"
                )
        elif getattr(self._client, "_asynchronous", False):
            raise RuntimeError(
                "this asynchronous Dask Client belongs to another event loop: create "
                "the Client(asynchronous=True) on the loop that uses the DaskPool, or "
                "pass a synchronous Client"
            )
        self._opened = True
        self._call_soon = thread_safe_call_soon()
        nthreads = await self._client_call(self._client.nthreads)
        self._max_workers = max(1, sum(nthreads.values()))
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        tg, self._tg = self._tg, None
        self._closed = True
        try:
            with anyio.CancelScope(shield=True):
                await self._cancel_futures(list(self._futures))
        finally:
            assert tg is not None
            tg.cancel_scope.cancel()  # map's calls in flight
            handled = await tg.__aexit__(exc_type, exc_val, exc_tb)
        return handled

    @property
    def max_workers(self) -> int:
        """The cluster's thread count when the pool was opened (default ``max_in_flight``)."""
        return self._max_workers

    def stats(self) -> PoolStats:
        """Counters of this pool's calls; the interpreter gauges are zero.

        ``max_workers`` is the cluster's thread count when the pool opened, ``busy``
        the calls submitted and not finished; ``completed``, ``failed``,
        ``cancelled`` and ``timed_out`` count calls. Interpreters live on the
        workers (see their :class:`InterpreterPlugin` pools), so ``workers``,
        ``idle``, ``created``... are 0.
        """
        return PoolStats(
            max_workers=self._max_workers,
            workers=0,
            idle=0,
            busy=len(self._futures),
            starting=0,
            quarantined=0,
            retiring=0,
            waiting=0,
            created=0,
            retired=0,
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cancelled,
            timed_out=self._timed_out,
            abandoned=0,
        )

    async def run_sync(
        self,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        timeout: float | None = None,
    ) -> T:
        """Run ``func(*args)`` in an interpreter of a Dask worker; return its result.

        :param func: a synchronous function, importable on the workers and in their
            interpreters (see :func:`in_interpreter`)
        :param args: positional arguments (Dask futures are resolved by Dask)
        :param timeout: seconds from this call, Dask's queueing included, after which
            the task is cancelled (and its code interrupted) and :class:`TimeoutError`
            raised; default: the pool's ``timeout``
        :return: what ``func`` returned
        :raises TypeError: ``func`` is a coroutine function or not callable
        :raises NotShareableError: ``func`` cannot be pickled for the workers, or
            cannot enter an interpreter there
        :raises TimeoutError: ``timeout`` expired
        :raises PoolClosedError: the pool is closed, or closed during the call
        :raises Exception: what ``func`` raised, with its remote traceback as
            ``__cause__``

        Cancellation: see the class documentation.
        """
        if timeout is None:
            timeout = self._timeout
        task = self._task(func, timeout)
        future = self._submit(task, args)
        outcome: tuple[bool, Any] | None = None
        try:
            # its own timeout ends here (timed_out); a cancellation from outside
            # (or Ctrl-C) passes through the scope: cancelled
            with anyio.move_on_after(timeout):
                outcome = await self._outcome(future)
        except BaseException:
            self._cancelled += 1
            raise
        if outcome is None:
            self._timed_out += 1
            raise TimeoutError(
                f"{describe(func)} did not finish within {timeout} s on the Dask "
                "cluster and was cancelled"
            )
        result: T = self._settle(task, outcome)
        return result

    def map(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any] | AsyncIterable[Any],
        /,
        *,
        ordered: bool = True,
        max_in_flight: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[T]:
        """Run ``func(item)`` for each item on the cluster; iterate over the results.

        As :meth:`InterpreterPool.map <aiointerp.InterpreterPool.map>`: at most
        ``max_in_flight`` calls (default: :attr:`max_workers`) are submitted ahead of
        the consumer, results come in input order (``ordered=True``) or as they
        complete, and the first error, leaving the loop early or cancelling the
        consumer cancels the calls in flight. Use it inside ``async with`` the pool.

        :param timeout: per-call timeout, as for :meth:`run_sync`
        :raises Exception: the first exception raised by a call
        """
        from ._host._map import map_in_pool

        return map_in_pool(
            self,
            func,
            iterable,
            ordered=ordered,
            max_in_flight=max_in_flight,
            timeout=timeout,
        )

    # -- internals

    async def _ensure_running(self) -> None:
        """What :mod:`aiointerp._host._map` awaits before it starts (as for a pool)."""
        self._check_open()

    def _check_open(self) -> None:
        if not self._opened:
            raise RuntimeError(
                "use the DaskPool in `async with DaskPool(client) as pool`"
            )
        if self._closed:
            raise PoolClosedError("the DaskPool is closed; create a new one")

    def _task(
        self, func: Callable[..., Any], timeout: float | None
    ) -> Callable[..., Any]:
        """The :func:`in_interpreter` task of ``func`` (the last one is reused: map)."""
        last = self._last
        if last is not None and last[0] is func and last[1] == timeout:
            return last[2]
        task = in_interpreter(func, timeout=timeout)
        self._last = (func, timeout, task)
        return task

    def _submit(
        self, task: Callable[..., Any], args: tuple[Any, ...]
    ) -> distributed.Future[Any]:
        self._check_open()
        future = self._client.submit(task, *args, pure=False)
        self._futures.add(future)
        return future

    async def _outcome(self, future: distributed.Future[Any]) -> tuple[bool, Any]:
        """Wait for ``future``; cancel it if the wait is (the caller counts why)."""
        try:
            return await self._wait(future)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._cancel_futures([future])
            raise
        finally:
            self._futures.discard(future)

    def _settle(self, task: Callable[..., Any], outcome: tuple[bool, Any]) -> Any:
        """Count the outcome of a call that finished; return its value or raise."""
        ok, value = outcome
        if ok:
            self._completed += 1
            return value
        self._failed += 1
        if isinstance(value, distributed.client.FutureCancelledError) and self._closed:
            raise PoolClosedError(
                f"the DaskPool was closed while {task.__qualname__} ran; the task was "
                "cancelled"
            ) from None
        raise value

    async def _wait(self, future: distributed.Future[Any]) -> tuple[bool, Any]:
        """Wait for ``future``; return ``(True, result)`` or ``(False, exception)``."""
        if self._client.asynchronous:
            try:
                return True, await future
            except Exception as exc:
                return False, exc
        done = anyio.Event()
        outcome: list[tuple[bool, Any]] = []
        call_soon = self._call_soon

        def on_done(
            future: distributed.Future[Any],
        ) -> None:  # in Dask's callback thread
            try:
                outcome.append((True, future.result()))
            except BaseException as exc:
                outcome.append((False, exc))
            try:
                call_soon(done.set)
            except RuntimeError:  # the event loop is gone: nobody waits
                pass

        future.add_done_callback(on_done)  # type: ignore[no-untyped-call]
        await done.wait()
        return outcome[0]

    async def _cancel_futures(self, futures: list[distributed.Future[Any]]) -> None:
        if futures:
            await self._client_call(self._client.cancel, futures)

    async def _client_call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Call a client method: awaited (asynchronous client) or in a thread."""
        if self._client.asynchronous:
            return await method(*args)
        return await anyio.to_thread.run_sync(functools.partial(method, *args))
