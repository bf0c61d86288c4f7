"""InterpreterPool: capacity, waiting callers, idle workers and the watcher task."""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import os
import time
import types
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from enum import Enum
from types import TracebackType
from typing import Any, Final, TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.abc

from . import _bigvalues, _defects, _transport
from ._backends import current_loop_getter, spawn_detached
from ._errors import BrokenWorkerError, PoolClosedError
from ._stats import PoolStats
from ._worker import Bootstrap, Worker

__all__ = ["InterpreterPool"]

logger = logging.getLogger("aiointerp")

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")

_job_ids = itertools.count(1)
#: Deadline to stop a worker that runs no call (normally a few milliseconds).
_STOP_DEADLINE: Final = 5.0
_BACKOFF_MIN: Final = 0.05
_BACKOFF_MAX: Final = 5.0


class _State(Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class _Waiter:
    __slots__ = ("error", "event", "worker")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.worker: Worker | None = None
        self.error: BaseException | None = None


_ASYNC_FLAGS: Final = (
    inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
)


def _reject_async(func: object) -> None:
    """Raise :class:`TypeError` for what run_sync cannot run: async callables."""
    kind = type(func)
    if kind is types.BuiltinFunctionType:
        return
    if kind is types.FunctionType:  # fast path for the common case
        code = func.__code__  # type: ignore[attr-defined]
        if not code.co_flags & _ASYNC_FLAGS and not hasattr(
            func, "_is_coroutine_marker"
        ):
            return
    call = getattr(func, "__call__", None)  # noqa: B004 - async __call__ of an object
    for candidate in (func, call):
        if inspect.iscoroutinefunction(candidate) or inspect.isasyncgenfunction(
            candidate
        ):
            raise TypeError(
                f"{_transport.describe(func)} is an async function: "
                "run_sync runs synchronous functions in an interpreter; await "
                "coroutine functions directly instead"
            )
    if not callable(func):
        raise TypeError(f"{func!r} is not callable")


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
    :raises ValueError: an option is out of range
    :raises TypeError: ``initializer`` is async or not callable
    :raises NotShareableError: ``initializer`` or ``initargs`` cannot be pickled

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
    ) -> None:
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
        init_blob = None
        if initializer is not None:
            _reject_async(initializer)
            init_blob = _transport.dumps(
                (initializer, tuple(initargs)),
                f"initializer {_transport.describe(initializer)}",
            )
        self._max_workers = max_workers
        self._min_idle = min_idle
        self._idle_timeout = idle_timeout
        self._max_tasks = max_tasks_per_worker
        self._cancel_grace = cancel_grace
        self._init_blob = init_blob
        self._forward_logging = forward_logging
        self._bootstrap: Bootstrap | None = None
        self._state = _State.NEW
        self._current_loop: Callable[[], object] = object
        self._loop: object = None
        self._watcher: Any = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._wake = anyio.Event()
        self._started = anyio.Event()
        self._closed = anyio.Event()
        self._close_timeout = 0.0
        # workers by state; every live interpreter is in exactly one of these
        self._idle: list[Worker] = []  # LIFO: [-1] is the warmest, [0] the oldest
        self._busy: dict[Worker, anyio.CancelScope] = {}
        self._starting: set[Worker] = set()
        self._quarantined: set[Worker] = set()
        self._retiring: set[Worker] = set()
        self._waiters: deque[_Waiter] = deque()
        self._backoff = 0.0
        self._backoff_until = -math.inf
        self._created = self._retired = 0
        self._completed = self._failed = self._cancelled = 0
        self._timed_out = self._abandoned = 0

    # -- public API

    async def __aenter__(self) -> InterpreterPool:
        await self._ensure_running()
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
        """Run ``func(*args)`` in an interpreter of this pool and return its result.

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
            cross interpreters
        :raises TimeoutError: ``timeout`` expired; the code was interrupted
        :raises PoolClosedError: the pool is closed, or was closed during the call
        :raises BrokenWorkerError: the interpreter could not start or died
        :raises RemoteError: ``func`` raised ``SystemExit``, ``KeyboardInterrupt``
            or an exception that cannot be pickled back
        :raises Exception: whatever ``func`` raised, with its remote traceback as
            ``__cause__``

        Cancellation: see the class documentation. The caller's cancellation is
        re-raised once the code stopped or after ``cancel_grace`` seconds.
        """
        _reject_async(func)
        func_blob, args_mode, payload = await _bigvalues.encode_call(func, args)
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
        await self._ensure_running()
        job: _transport.Job
        if timeout is None:
            job = (next(_job_ids), None, func_blob, args_mode, payload)
            return await self._call(job, func, None)  # type: ignore[no-any-return]
        deadline = time.monotonic() + timeout
        job = (next(_job_ids), deadline, func_blob, args_mode, payload)
        with anyio.move_on_after(timeout) as scope:
            return await self._call(job, func, scope)  # type: ignore[no-any-return]
        raise TimeoutError(
            f"{_transport.describe(func)} did not finish within {timeout} s "
            "and was interrupted"
        )

    async def aclose(self, *, timeout: float = 5.0) -> None:
        """Close the pool: destroy every interpreter and join every thread.

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
            self._close_timeout = timeout
            self._wake.set()
        with anyio.CancelScope(shield=True):
            await self._closed.wait()

    def stats(self) -> PoolStats:
        """Return a consistent snapshot of the pool's gauges and counters."""
        return PoolStats(
            max_workers=self._max_workers,
            workers=self._live(),
            idle=len(self._idle),
            busy=len(self._busy),
            starting=len(self._starting),
            quarantined=len(self._quarantined),
            retiring=len(self._retiring),
            waiting=len(self._waiters),
            created=self._created,
            retired=self._retired,
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cancelled,
            timed_out=self._timed_out,
            abandoned=self._abandoned,
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
        """Run ``func(item)`` for each item in interpreters; iterate over the results.

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
        from ._map import map_in_pool

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
        """The most interpreters this pool runs at once."""
        return self._max_workers

    # -- lifecycle

    def _live(self) -> int:
        return (
            len(self._idle)
            + len(self._busy)
            + len(self._starting)
            + len(self._quarantined)
            + len(self._retiring)
        )

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
            if self._started.is_set():
                return
            await self._started.wait()
        elif self._state is _State.NEW:
            _defects.warn_once()
            self._state = _State.RUNNING
            self._current_loop = current_loop_getter()
            self._loop = self._current_loop()
            self._bootstrap = Bootstrap.of_host(self._init_blob, self._forward_logging)
            self._watcher = spawn_detached(self._run_watcher, "aiointerp pool watcher")
            await self._started.wait()
        if self._state is not _State.RUNNING:  # closed, possibly while we waited
            raise PoolClosedError("the InterpreterPool is closed; create a new one")

    async def _run_watcher(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._started.set()
                try:
                    await self._watch()
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._shutdown(tg)
        except Exception:  # pragma: no cover - a bug of ours
            # not re-raised: on trio a failing system task crashes the whole run
            logger.exception("the aiointerp pool watcher failed; the pool is closed")
        finally:
            self._state = _State.CLOSED
            self._tg = None
            self._started.set()
            self._closed.set()

    async def _watch(self) -> None:
        """Keep the pool warm and lean: sleep until the next deadline or a wake-up."""
        while self._state is _State.RUNNING:
            self._wake = anyio.Event()
            delay = self._maintain()
            with anyio.move_on_after(delay):
                await self._wake.wait()

    def _maintain(self) -> float:
        now = anyio.current_time()
        next_check = math.inf
        if self._idle_timeout is not None:
            while len(self._idle) > self._min_idle:
                expires = self._idle[0].idle_since + self._idle_timeout
                if expires > now:
                    next_check = expires
                    break
                self._retire(self._idle.pop(0), "idle")
        wanted = len(self._waiters) + self._min_idle - len(self._idle)
        wanted -= len(self._starting)
        room = self._max_workers - self._live()
        if min(wanted, room) > 0:
            if now < self._backoff_until:
                next_check = min(next_check, self._backoff_until)
            else:
                assert self._tg is not None
                for _ in range(min(wanted, room)):
                    try:
                        worker = Worker(self._bootstrap)  # type: ignore[arg-type]
                    except OSError as exc:  # out of file descriptors...
                        self._start_failed(
                            BrokenWorkerError(f"could not start a worker: {exc!r}")
                        )
                        break
                    self._starting.add(worker)
                    self._tg.start_soon(self._start_worker, worker)
        return next_check - now

    async def _start_worker(self, worker: Worker) -> None:
        try:
            await worker.start()
        except (BrokenWorkerError, OSError, RuntimeError) as exc:
            if not isinstance(exc, BrokenWorkerError):  # a thread could not start...
                exc = BrokenWorkerError(f"could not start a worker: {exc!r}")
            self._starting.discard(worker)
            self._retiring.add(worker)
            self._start_failed(exc)
            await self._close(worker, "broken", counted=False)
            return
        except BaseException:
            self._starting.discard(worker)
            self._retiring.add(worker)
            await self._close(worker, "pool closed", counted=False)
            raise
        self._starting.discard(worker)
        self._created += 1
        self._backoff = 0.0
        self._backoff_until = -math.inf
        logger.debug("created %r", worker)
        self._hand_off(worker)

    def _start_failed(self, exc: BrokenWorkerError) -> None:
        """Back off, and fail the first waiting caller: it waited for this worker."""
        self._backoff = min(max(self._backoff * 2, _BACKOFF_MIN), _BACKOFF_MAX)
        self._backoff_until = anyio.current_time() + self._backoff
        logger.warning(
            "could not start a worker interpreter (next try in %.2f s): %s",
            self._backoff,
            exc,
        )
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.error = exc
            waiter.event.set()
        self._wake.set()

    def _hand_off(self, worker: Worker) -> None:
        """Give a ready worker to the first waiting caller, or make it idle."""
        if self._state is not _State.RUNNING:
            self._retire(worker, "pool closed")
            return
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.worker = worker
            self._busy[worker] = anyio.CancelScope()
            waiter.event.set()
            return
        worker.idle_since = anyio.current_time()
        self._idle.append(worker)
        if len(self._idle) == self._min_idle + 1 and self._idle_timeout is not None:
            # the first idle worker beyond the reserve: the watcher may be sleeping
            # with no idle deadline to watch (later ones expire after this one)
            self._wake.set()

    def _retire(
        self, worker: Worker, reason: str, deadline: float = _STOP_DEADLINE
    ) -> None:
        self._retiring.add(worker)
        assert self._tg is not None
        self._tg.start_soon(self._close, worker, reason, deadline)
        self._wake.set()

    async def _close(
        self,
        worker: Worker,
        reason: str,
        deadline: float = _STOP_DEADLINE,
        counted: bool = True,
    ) -> None:
        with anyio.CancelScope(shield=True):
            stopped = await worker.aclose(deadline)
        self._retiring.discard(worker)
        if counted and stopped:
            self._retired += 1
        self._wake.set()
        if stopped:
            logger.debug("retired %r (%s)", worker, reason)
        else:
            logger.warning(
                "%r did not stop (%s): it still runs %s, which cannot be "
                "interrupted; its thread is left to finish",
                worker,
                reason,
                worker.job_label or "its initializer",
            )

    async def _quarantine(self, worker: Worker) -> None:
        """Hold an abandoned worker's slot until its code returns, then replace it."""
        try:
            await worker.receive()
        except BrokenWorkerError:
            pass
        except BaseException:  # the pool closes while the code still runs
            self._quarantined.discard(worker)
            self._retire(worker, "pool closed", deadline=0.0)
            raise
        self._quarantined.discard(worker)
        self._retire(worker, "abandoned call ended")

    async def _shutdown(self, tg: anyio.abc.TaskGroup) -> None:
        self._state = _State.CLOSING
        error = PoolClosedError("the InterpreterPool was closed")
        while self._waiters:
            waiter = self._waiters.popleft()
            waiter.error = error
            waiter.event.set()
        if self._busy:
            with anyio.move_on_after(self._close_timeout):
                while self._busy:
                    self._wake = anyio.Event()
                    await self._wake.wait()
            for scope in self._busy.values():
                scope.cancel()
            while self._busy:  # the callers wait cancel_grace at most, then release
                self._wake = anyio.Event()
                await self._wake.wait()
        while self._idle:
            self._retire(self._idle.pop(), "pool closed")
        # quarantined code was interrupted and given cancel_grace already: stop waiting
        tg.cancel_scope.cancel()  # quarantine waits and starts; closes are shielded

    # -- one call

    async def _acquire(self) -> Worker:
        if self._state is not _State.RUNNING:
            raise PoolClosedError("the InterpreterPool is closed; create a new one")
        if self._idle and not self._waiters:
            worker = self._idle.pop()
            self._busy[worker] = anyio.CancelScope()
            if len(self._idle) < self._min_idle:
                self._wake.set()
            return worker
        waiter = _Waiter()
        self._waiters.append(waiter)
        if self._live() < self._max_workers:
            self._wake.set()  # room to start a worker for this caller
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.worker is not None:
                self._release(waiter.worker)
            elif waiter.error is None:
                self._waiters.remove(waiter)
            raise
        if waiter.error is not None:
            raise waiter.error
        assert waiter.worker is not None
        return waiter.worker

    def _release(self, worker: Worker) -> None:
        """A call is done with *worker*: reuse it, or retire it."""
        del self._busy[worker]
        if worker.spent:
            self._retire(worker, "interrupted or broken")
        elif self._max_tasks is not None and worker.tasks >= self._max_tasks:
            self._retire(worker, f"served {worker.tasks} calls")
        else:
            self._hand_off(worker)
        if self._state is _State.CLOSING:
            self._wake.set()  # _shutdown waits for the busy calls to end

    async def _call(
        self, job: _transport.Job, func: object, timeout: anyio.CancelScope | None
    ) -> Any:
        try:
            worker = await self._acquire()
        except BaseException as exc:
            self._count_failure(exc, timeout)
            raise
        scope = self._busy[worker]
        worker.job_label = _transport.describe(func)
        with scope:
            try:
                outcome = await worker.run(job)
            except BrokenWorkerError:
                self._failed += 1
                self._release(worker)
                raise
            except BaseException as exc:
                # interrupted by aclose(): the caller gets PoolClosedError, a failure
                self._count_failure(exc, timeout, closed=scope.cancel_called)
                await self._stop_call(worker)
                raise
        if scope.cancelled_caught:
            raise PoolClosedError(
                f"the InterpreterPool was closed while {worker.job_label} ran; "
                "the call was interrupted"
            )
        self._release(worker)
        if outcome[1] == _transport.INTERRUPTED and job[1] is not None:
            # the code saw its own deadline pass (checkpoint) before our timer fired
            self._timed_out += 1
            raise TimeoutError(f"{worker.job_label} reached its deadline")
        if outcome[1] <= _transport.OK_PICKLED:
            self._completed += 1
        else:
            self._failed += 1
        return await _bigvalues.decode_result(outcome, func)

    def _count_failure(
        self,
        exc: BaseException,
        timeout: anyio.CancelScope | None,
        closed: bool = False,
    ) -> None:
        if closed or not isinstance(exc, anyio.get_cancelled_exc_class()):
            self._failed += 1
        elif timeout is not None and timeout.cancel_called:
            self._timed_out += 1
        else:
            self._cancelled += 1

    async def _stop_call(self, worker: Worker) -> None:
        """The caller is cancelled mid-call: interrupt the code, wait a little, release."""
        try:
            with anyio.CancelScope(shield=True):
                worker.interrupt()
                with anyio.move_on_after(self._cancel_grace):
                    try:
                        await worker.receive()
                    except BrokenWorkerError:
                        pass
        finally:  # also when a second native cancel (asyncio) breaks the shield
            self._after_stop(worker)

    def _after_stop(self, worker: Worker) -> None:
        if worker.job_id:  # still running: quarantine, keep the slot
            del self._busy[worker]
            self._quarantined.add(worker)
            self._abandoned += 1
            self._wake.set()
            logger.warning(
                "%r: %s did not stop within cancel_grace=%s s after it was "
                "interrupted; quarantined until it returns",
                worker,
                worker.job_label,
                self._cancel_grace,
            )
            assert self._tg is not None
            self._tg.start_soon(self._quarantine, worker)
        else:
            self._release(worker)
