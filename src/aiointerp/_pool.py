"""InterpreterPool, the public pool: its options, its lifecycle (opening, the watcher
task, closing) and its calls' entry points; one call's machinery is
:mod:`aiointerp._host._call`. Longer than 400 lines: the public docstrings of
:class:`InterpreterPool` are most of it."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from enum import Enum
from types import TracebackType
from typing import Any, TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.abc

from ._host import _bigvalues, _defects
from ._host._call import Calls
from ._host._map import map_in_pool
from ._host._roster import Roster
from ._host._routing import Router
from ._host._stats import PoolStats
from ._host._validate import reject_async
from ._inside import _mainscript
from ._kinds._backends import current_loop_getter, ki_protected, spawn_detached
from ._kinds._config import worker_config
from ._kinds._interpreter import InterpreterWorker
from ._kinds._worker import Worker
from ._wire import _encoding
from ._wire._errors import BrokenWorkerError, PoolClosedError

__all__ = ["InterpreterPool"]

logger = logging.getLogger("aiointerp")

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")

_KINDS = ("interpreter", "process", "auto")


class _State(Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class InterpreterPool:
    """A capacity-limited pool of warm subinterpreters, each served by its own thread.

    Use it as an async context manager (``async with InterpreterPool() as pool``) or
    through :func:`~aiointerp.run_sync_in_interpreter`, whose default pool is one per
    event loop. It can be created outside an event loop, and belongs to the event
    loop that first uses it: using it from another one raises :class:`RuntimeError`.
    When that event loop ends, a pool still open is closed.

    :param max_workers: the most interpreters that exist at once (default:
        :func:`os.cpu_count`); callers beyond it wait, first come first served
    :param min_idle: idle, ready interpreters kept in reserve, created in the
        background when the pool opens and whenever a call takes one
    :param idle_timeout: seconds after which an idle interpreter is destroyed,
        oldest first, down to ``min_idle``; ``None`` keeps them
    :param max_tasks_per_worker: replace an interpreter after it served this many
        calls (for code that leaks memory or state); ``None`` for no limit
    :param initializer: a picklable function run once inside each new interpreter
        before it serves calls (pre-import modules, warm caches); if it raises, that
        interpreter is discarded, the call waiting for it gets
        :class:`~aiointerp.BrokenWorkerError` (the initializer's exception is its
        ``__cause__``), and the pool backs off before it tries again
    :param initargs: positional arguments for ``initializer``
    :param cancel_grace: seconds a cancelled or timed-out call may take to stop
        after it was interrupted before the caller is released anyway and the
        interpreter is quarantined
    :param forward_logging: hand the log records and warnings of code running in
        the interpreters to this process's :mod:`logging` (the logger of the same
        name handles them, with ``record.interpreter`` set) and :mod:`warnings`;
        records below the level of the host's logger are never built or sent.
        ``False`` leaves the interpreters' logging unconfigured, as CPython does
    :param max_waiting: shed load: when this many callers already wait for a
        worker, a new call raises :class:`~aiointerp.PoolBusyError` at once instead
        of queueing (the waiting ones are unaffected); callers for which a worker
        is being started (fewer than ``max_workers`` exist) do not count.
        ``None`` (the default) queues every caller
    :param kind: what runs the calls: ``"interpreter"`` (subinterpreters, own
        GIL, in this process), ``"process"`` (child processes: every extension
        module loads there, and code that does not stop within ``cancel_grace``
        after it was interrupted is killed, its slot freed at once) or ``"auto"``
        (each function where it loads, cheapest first: an interpreter, by
        reference, then by value; else a process; remembered per function).
        Before a function's first call, an ``"auto"`` pool reads the imports in its
        code (its body, nested code, helpers of its module) and probes each module
        not known yet once, in a fresh interpreter off the event loop: a module
        that refuses subinterpreters sends the function to a process from its
        first call; an import it cannot see (a computed name) fails that call,
        then the function runs in a process.
        ``max_workers`` bounds the workers of every kind together, and the mix of
        kinds follows the mix of the calls (a call that loads in an interpreter
        runs in a free process when no interpreter is free); ``min_idle`` keeps
        interpreters warm under ``"auto"``. A function whose module refuses
        subinterpreters (it imports FastAPI, hence pydantic_core) is sent by value
        (with cloudpickle) under ``"interpreter"`` too; see the worker kinds page
        of the documentation
    :param forward_output: what the workers' code writes to :data:`sys.stdout` and
        :data:`sys.stderr` (``print()``) is written to this process's *current*
        ``sys.stdout`` and ``sys.stderr``, so :func:`contextlib.redirect_stdout`,
        pytest's ``capsys`` and a notebook's cell output show it; a call's output
        is written before its result is returned. ``False`` leaves the workers'
        streams on the process's file descriptors 1 and 2
    :param preload: names of modules that every new worker imports, in this
        order, before the ``initializer`` runs and before it serves calls (your
        CPU-bound module, and what it imports: the first call does not pay for
        them). A module that cannot be imported is reported as for a failing
        ``initializer``, its name in the message
    :raises ValueError: an option is out of range, or ``kind`` is unknown
    :raises TypeError: ``initializer`` is async or not callable, or ``preload``
        is a string or holds something else than strings
    :raises NotShareableError: ``initializer`` or ``initargs`` cannot be pickled

    .. rubric:: Opening: fail fast

    A pool with a ``preload`` or an ``initializer`` opens (``async with``, or the
    first call) only once ``max(min_idle, 1)`` workers have started, so that a
    worker that can never start fails the application's startup instead of its
    requests: if one fails, the pool is closed and the opening raises
    :class:`~aiointerp.BrokenWorkerError`, the worker's exception as its
    ``__cause__``, without trying again (later calls raise
    :class:`~aiointerp.PoolClosedError`). The opening goes on if the first caller
    is cancelled meanwhile (the next one waits for it); ``async with`` cancelled
    while it waits closes the pool. The wait is not part of a call's ``timeout``.
    Other pools open at once and start their
    workers in the background; a start failure then fails the call that waited for
    that worker, and the pool tries again after a backoff (logged once, with a
    count of the failures, until a worker starts).

    .. rubric:: Cancellation

    Cancelling a caller (any asyncio or trio cancellation, ``anyio`` scopes, or the
    call's ``timeout=``) that still waits for a worker removes it from the queue: the
    call never runs. Cancelling a running call interrupts the code inside the
    interpreter: :class:`~aiointerp.Interrupted` is raised there within about a
    millisecond, every ``finally`` block and ``__exit__`` runs, and the caller gets its
    cancellation (or :class:`TimeoutError`) once the code has stopped, or after
    ``cancel_grace`` seconds, whichever comes first. The interpreter is then retired,
    since an exception raised at an arbitrary point may have left its state broken. Code that cannot be
    interrupted in time (``time.sleep``, a long C call, ``except BaseException``) is
    abandoned: it keeps its capacity slot until it returns, its result is
    discarded, and its interpreter is destroyed and replaced then.
    """

    __module__ = "aiointerp"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        min_idle: int = 0,
        idle_timeout: float | None = 30.0,
        max_tasks_per_worker: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        cancel_grace: float = 1.0,
        forward_logging: bool = True,
        max_waiting: int | None = None,
        kind: str = "interpreter",
        forward_output: bool = True,
        preload: Iterable[str] = (),
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(
                f'kind must be "interpreter", "process" or "auto", not {kind!r}'
            )
        _defects.refuse_free_threaded()
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        if not 0 <= min_idle <= max_workers:
            raise ValueError(
                f"min_idle must be between 0 and max_workers ({max_workers}), "
                f"not {min_idle}"
            )
        if idle_timeout is not None and idle_timeout < 0:
            raise ValueError(f"idle_timeout must be >= 0 or None, not {idle_timeout}")
        if max_tasks_per_worker is not None and max_tasks_per_worker < 1:
            raise ValueError(
                f"max_tasks_per_worker must be >= 1 or None, not {max_tasks_per_worker}"
            )
        if cancel_grace < 0:
            raise ValueError(f"cancel_grace must be >= 0, not {cancel_grace}")
        if max_waiting is not None and max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0 or None, not {max_waiting}")
        if isinstance(preload, str):
            raise TypeError(
                f"preload takes module names, not one string: preload=({preload!r},)"
            )
        preload = tuple(preload)
        for name in preload:
            if not isinstance(name, str) or not name:
                raise TypeError(f"preload takes module names (str), not {name!r}")
        init_blob = None
        if initializer is not None:
            reject_async(initializer)
            init_blob = _encoding.dumps(
                (initializer, tuple(initargs)),
                f"initializer {_encoding.describe(initializer)}",
                _encoding.RECIPIENT[kind],
            )
        self._kind = kind
        self._max_workers = max_workers
        self._init_blob = init_blob
        self._forward_logging = forward_logging
        self._forward_output = forward_output
        self._preload = preload
        #: workers that must have started before the pool opens (fail fast)
        self._open_with = max(min_idle, 1) if preload or init_blob else 0
        self._start_error: BrokenWorkerError | None = None
        self._roster = Roster(
            self._make_worker,
            kinds=("interpreter", "process") if kind == "auto" else (kind,),
            # an interpreter call may run in a process when no interpreter is free
            spills={"interpreter": "process"} if kind == "auto" else None,
            max_workers=max_workers,
            min_idle=min_idle,
            idle_timeout=idle_timeout,
            max_tasks=max_tasks_per_worker,
            max_waiting=max_waiting,
        )
        self._config: Any = None
        self._state = _State.NEW
        self._current_loop: Callable[[], object] = object
        self._loop: object = None
        self._watcher: Any = None
        self._started = anyio.Event()
        self._ready = anyio.Event()  # opened: _open_with workers started (or closed)
        self._closed = anyio.Event()
        self._calls = Calls(self._roster, Router(kind), kind, max_workers, cancel_grace)

    # -- public API

    async def __aenter__(self) -> InterpreterPool:
        opening = self._state is _State.NEW
        try:
            await self._ensure_running()
        except BaseException:
            if opening:  # it failed or was cancelled: no __aexit__ closes the pool
                await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def run_sync(
        self,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        timeout: float | None = None,
    ) -> T:
        """Run ``func(*args)`` in a worker of this pool and return its result.

        Use :func:`functools.partial` to pass keyword arguments. ``func``, the
        arguments and the result must be shareable or picklable (see the docs);
        this is checked before a worker is taken.

        :param func: a synchronous callable that can be pickled by reference
            (module-level function, builtin, bound method of a picklable object,
            :func:`functools.partial`), or by value with cloudpickle installed
        :param args: positional arguments for ``func``
        :param timeout: seconds from this call (queueing included) after which the
            call is interrupted and :class:`TimeoutError` raised; ``None`` for none
        :return: what ``func`` returned
        :raises TypeError: ``func`` is a coroutine function or not callable
        :raises NotShareableError: ``func``, the arguments or the result cannot
            be sent to a worker or back (the message names the kind of worker)
        :raises TimeoutError: ``timeout`` expired; the code was interrupted
        :raises PoolClosedError: the pool is closed, or was closed during the call
        :raises PoolBusyError: ``max_waiting`` callers already wait for a worker
        :raises BrokenWorkerError: the worker could not start or died (a
            process worker's error says how: its exit status or signal)
        :raises RemoteError: ``func`` raised ``SystemExit``, ``KeyboardInterrupt``
            or an exception that cannot be pickled back
        :raises Exception: whatever ``func`` raised, with its remote traceback as
            ``__cause__``

        Cancellation: see the class documentation. The caller's cancellation is
        re-raised once the code stopped or after ``cancel_grace`` seconds.
        """
        reject_async(func)
        encoded = await _bigvalues.encode_call(
            func, args, _encoding.RECIPIENT[self._kind]
        )
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
        await self._ensure_running()
        return await self._calls.run(func, encoded, timeout)  # type: ignore[no-any-return]

    async def aclose(self, *, timeout: float = 5.0) -> None:
        """Close the pool: stop every worker (interpreter, process), join every thread.

        New calls fail at once with :class:`PoolClosedError`, and so do callers
        still waiting for a worker. Running calls get ``timeout`` seconds to finish;
        then they are interrupted, and their callers get :class:`PoolClosedError`.
        Code that cannot be interrupted within ``cancel_grace`` is reported with a
        warning and left to finish on its own thread. ``aclose`` shields itself from
        cancellation until the pool is closed. Closing twice is harmless, and so is
        closing a pool that was never used; ``async with`` calls ``aclose()`` with
        the default ``timeout``.

        :param timeout: seconds that running calls get to finish before they are
            interrupted
        """
        if self._state is _State.CLOSED:
            return
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            self._closed.set()
            return
        self._check_loop()
        if self._state is _State.RUNNING:
            self._state = _State.CLOSING
            self._roster.close_timeout = timeout
            self._roster.running = False
            self._roster.wake.set()
        with anyio.CancelScope(shield=True):
            await self._closed.wait()

    def stats(self) -> PoolStats:
        """Return a consistent snapshot of the pool's gauges and counters."""
        roster = self._roster
        return PoolStats(
            max_workers=self._max_workers,
            workers=roster.live(),
            idle=len(roster.idle),
            busy=len(roster.busy),
            starting=len(roster.starting),
            quarantined=len(roster.quarantined),
            retiring=len(roster.retiring),
            waiting=len(roster.waiters),
            created=roster.created,
            retired=roster.retired,
            completed=self._calls.completed,
            failed=self._calls.failed,
            cancelled=self._calls.cancelled,
            timed_out=self._calls.timed_out,
            abandoned=roster.abandoned,
            shed=roster.shed,
            interpreters=roster.live_of("interpreter"),
            processes=roster.live_of("process"),
        )

    def map(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any] | AsyncIterable[Any],
        /,
        *,
        ordered: bool = True,
        max_in_flight: int | None = None,
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> AsyncIterator[T]:
        """Run ``func(item)`` for each item in the workers; iterate over the results.

        Use it as ``async for result in pool.map(func, items): ...``. A background
        task of the pool reads ``iterable`` lazily, from the moment the iterator is
        first advanced. At most ``max_in_flight`` calls are submitted and not yet
        consumed (backpressure). With ``ordered=True`` results come in input order,
        otherwise as they complete.

        **Batches.** With ``chunksize`` > 1 the task takes that many items at a time
        and one call runs ``func`` over all of them in an interpreter: one round trip
        per batch instead of one per item, for functions so short (microseconds)
        that the round trip, tens of microseconds, would dominate. The results still
        come one by one (with ``ordered=False``, a batch's results together as the
        batch completes). A batch counts as one call for ``max_in_flight``, for
        ``timeout`` and in :meth:`stats`. Its items are pickled together
        (``memoryview`` items cross as they are), and an async iterable is read
        until a batch is full, or ends, before the batch is sent. A batch's results
        after its first are delivered without a checkpoint (no yield to the event
        loop, no cancellation check: it would cost more than the function), so a
        consumer whose loop body never awaits lets other tasks run, and sees its
        cancellation, once per batch.

        **Errors.** The first exception raised by a call, by an item of a batch or
        by ``iterable`` cancels and interrupts the calls still in flight. The next
        ``__anext__`` calls deliver the results computed before it first (with
        ``ordered=True``, those in input order up to the failing item; with
        ``ordered=False``, those already completed), then raise it once the calls
        have stopped. In a batch, the items after the failing one do not run. The
        exception is the one ``func`` raised, with its remote traceback as
        ``__cause__`` and a note naming the item, its index and a short repr
        (``aiointerp: raised by item 5 of the map: 5``); an exception of a whole
        batch (a :class:`TimeoutError`, a :class:`~aiointerp.NotShareableError` for
        its items) names the batch's range of items instead.

        **Stopping early and cancellation.** Cancelling the consumer while it waits
        cancels (and interrupts) the calls in flight, batches included. To stop
        early, close the iterator: ``await it.aclose()`` cancels the calls in flight
        and waits for them to stop, and ``async with
        contextlib.aclosing(pool.map(...)) as it:`` does it for you. An iterator
        dropped without ``aclose()`` cancels its calls in the background when it is
        garbage-collected.

        :param func: a synchronous, picklable callable taking one item
        :param iterable: the items, a sync or an async iterable
        :param ordered: results in input order, or as they complete
        :param max_in_flight: most calls (a batch counts as one) submitted and not
            yet consumed; default ``max_workers``, ``2 * max_workers`` with
            ``chunksize`` > 1 (so that every worker has its next batch waiting)
        :param timeout: per-call timeout, as for :meth:`run_sync`; per batch with
            ``chunksize`` > 1
        :param chunksize: items per call (default 1); see the pool tuning page of
            the documentation for choosing it
        :return: an async iterator over the results
        :raises TypeError: ``func`` is async, ``iterable`` is not iterable, or
            ``chunksize`` is not an int (at once)
        :raises ValueError: ``max_in_flight`` or ``chunksize`` is below 1, or
            ``timeout`` is negative (at once)
        :raises Exception: the first exception raised by a call or an item, once
            the results computed before it were delivered and the calls still in
            flight cancelled; it carries a note naming the item
        """
        return map_in_pool(
            self,
            func,
            iterable,
            ordered=ordered,
            max_in_flight=max_in_flight,
            timeout=timeout,
            chunksize=chunksize,
        )

    @property
    def max_workers(self) -> int:
        """The most workers (interpreters and processes) this pool runs at once."""
        return self._max_workers

    # -- lifecycle

    def _make_worker(self, kind: str) -> Worker:
        if kind == "process":
            # for cost: a pool without process workers never loads them (nor PipeLink)
            from ._kinds._process import ProcessWorker

            return ProcessWorker(self._config)
        return InterpreterWorker(self._config)

    @property
    def _tg(self) -> anyio.abc.TaskGroup | None:
        """The task group of the pool's watcher (map runs its tasks there)."""
        return self._roster.tg

    def _check_loop(self) -> None:
        try:
            same = self._current_loop() is self._loop
        except RuntimeError:  # no loop of that library runs here
            same = False
        if not same:
            raise RuntimeError(
                "this InterpreterPool belongs to another event loop; create one pool "
                "per event loop (the default pool of run_sync_in_interpreter is)"
            )

    async def _ensure_running(self) -> None:
        if self._state is _State.RUNNING:
            self._check_loop()
            if self._ready.is_set():
                return
            await self._ready.wait()
        elif self._state is _State.NEW:
            _mainscript.refuse_nested_use()
            if self._kind != "process":  # the defects are of subinterpreters
                _defects.warn_once()
            self._state = _State.RUNNING
            self._current_loop = current_loop_getter()
            self._loop = self._current_loop()
            self._config = worker_config(
                self._init_blob,
                self._forward_logging,
                self._forward_output,
                self._preload,
            )
            self._watcher = spawn_detached(self._run_watcher, "aiointerp pool watcher")
            await self._started.wait()
            if self._open_with and self._roster.tg is not None:
                # a task of the pool's own: a cancelled opener stops only its wait
                self._roster.tg.start_soon(self._open)
            else:
                self._ready.set()
            await self._ready.wait()
            if self._start_error is not None:  # the opener raises the cause
                await self.aclose()
                raise self._start_error
        if self._state is not _State.RUNNING:  # closed, possibly while we waited
            if self._start_error is not None:  # its opening failed
                raise PoolClosedError(
                    "the InterpreterPool is closed: its workers could not start"
                ) from self._start_error
            raise PoolClosedError("the InterpreterPool is closed; create a new one")

    async def _open(self) -> None:
        """Wait until ``_open_with`` workers started; close the pool if one fails."""
        try:
            await self._roster.wait_started(self._open_with)
        except BrokenWorkerError as exc:
            self._start_error = exc
            self._state = _State.CLOSING  # aclose() without its wait: we are a task
            self._roster.running = False  # of the watcher, which closes the pool
            self._roster.wake.set()
        finally:
            self._ready.set()

    @ki_protected
    async def _run_watcher(self) -> None:
        try:
            await self._roster.watch(self._started)
        except Exception:  # a bug of ours
            # not re-raised: on trio a failing system task crashes the whole run
            logger.exception("the aiointerp pool watcher failed; the pool is closed")
        finally:
            self._state = _State.CLOSED
            self._roster.running = False
            self._started.set()
            self._ready.set()
            self._closed.set()
