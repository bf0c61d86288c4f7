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
:mod:`aiointerp._dask._compat`.

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
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

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
from distributed.protocol import pickle as dask_pickle

from . import NotShareableError, PoolClosedError, PoolStats
from ._dask import _client, _compat
from ._dask._worker import InterpreterPlugin as InterpreterPlugin
from ._dask._worker import run_on_worker
from ._seam import describe, map_in_pool, reject_async, thread_safe_call_soon

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["DaskPool", "InterpreterPlugin", "in_interpreter"]

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")

if _compat.PROFILER_CRASHES:
    _compat.disable_profiling_config()


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
        result: T = await run_on_worker(blob, label, timeout, args)
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
            if library != "asyncio":
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
        nthreads = await _client.call(self._client, self._client.nthreads)
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
                await _client.cancel(self._client, list(self._futures))
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
        """What ``map`` awaits before it starts (as for a pool)."""
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
            return await _client.wait(self._client, future, self._call_soon)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _client.cancel(self._client, [future])
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
