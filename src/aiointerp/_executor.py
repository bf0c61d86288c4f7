"""InterpreterExecutor: the engine behind a :class:`concurrent.futures.Executor`.

One private thread ("aiointerp-executor") runs an asyncio event loop with an
:class:`~aiointerp.InterpreterPool`, started on the first :meth:`submit`. Other
threads post actions (start a call, interrupt one, stop) to an inbox and wake the
loop's main task with ``loop.call_soon_threadsafe``, which never blocks: ``submit``
also works from done-callbacks, which run on that thread. The main task runs the
actions (anyio needs a task, not a bare loop callback); each call is a task that
waits for a slot, marks its future running, and awaits the pool.

With ``interrupt_on_cancel=True`` the futures are :class:`_InterruptibleFuture`:
``cancel()`` of a running call marks the future cancelled at once and posts an
interrupt, without blocking (it is called on event-loop threads by asyncio's
``wrap_future``, and on this executor's thread by done-callbacks). The future then
waits in the standard's own intermediate state, ``CANCELLED``, until the call task
sees the code stopped and moves it to ``CANCELLED_AND_NOTIFIED``, as an executor
does for a call cancelled while queued: ``wait()`` and ``as_completed()`` only count
that state. ``result()``, ``exception()`` and the done-callbacks wait for it too, so
the code's cleanup has run before anyone is told the call is cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import (
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    InvalidStateError,
)
from concurrent.futures import _base as _futures
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import anyio

from ._host._map import validate_chunksize
from ._host._validate import reject_async
from ._inside._batch import Batch, decode
from ._pool import InterpreterPool
from ._wire._errors import BrokenWorkerError

if TYPE_CHECKING:
    from ._inside._batch import BatchOutcome

__all__ = ["InterpreterExecutor"]

P = ParamSpec("P")
T = TypeVar("T")

_live: weakref.WeakSet[InterpreterExecutor] = weakref.WeakSet()
_exiting = False


class _InterruptibleFuture(Future[T]):
    """The future of a call of an executor with ``interrupt_on_cancel=True``.

    Same as :class:`~concurrent.futures.Future`, except that :meth:`cancel` also
    cancels a running call: it interrupts the code and returns ``True`` without
    waiting. The future is cancelled from then on; :meth:`result`,
    :meth:`exception`, the done-callbacks, :func:`~concurrent.futures.wait` and
    :func:`~concurrent.futures.as_completed` see it once the code has stopped.
    """

    # private parts of concurrent.futures.Future that typeshed does not declare
    _done_callbacks: list[Callable[[Future[T]], object]]
    _invoke_callbacks: Callable[[], None]

    def __init__(self) -> None:
        super().__init__()
        #: a running call was cancelled and has not stopped yet
        self._stopping = False
        #: posts the interrupt of the running call (set by the executor)
        self._stop: Callable[[], None] | None = None

    def cancel(self) -> bool:
        with self._condition:
            state = self._state
            if state == _futures.FINISHED:
                return False
            if state in (_futures.CANCELLED, _futures.CANCELLED_AND_NOTIFIED):
                return True
            self._state = _futures.CANCELLED
            if state == _futures.RUNNING:
                self._stopping = True
            else:  # pending: as the standard does
                self._condition.notify_all()
        if state == _futures.RUNNING:
            assert self._stop is not None
            self._stop()
        else:
            self._invoke_callbacks()
        return True

    def result(self, timeout: float | None = None) -> T:
        self._wait_settled(timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_settled(timeout)
        return super().exception(0)

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        with self._condition:
            if not self._settled():
                self._done_callbacks.append(fn)
                return
        try:
            fn(self)
        except Exception:
            _futures.LOGGER.exception("exception calling callback for %r", self)

    def _settled(self) -> bool:
        return not self._stopping and self._state not in (
            _futures.PENDING,
            _futures.RUNNING,
        )

    def _wait_settled(self, timeout: float | None) -> None:
        with self._condition:
            if not self._condition.wait_for(self._settled, timeout):
                raise TimeoutError()

    def _stopped(self) -> None:
        """The cancelled call has stopped: the future is done for everyone now."""
        with self._condition:
            self._stopping = False
            self._state = _futures.CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()


def _stopping(future: Future[Any]) -> bool:
    return isinstance(future, _InterruptibleFuture) and future._stopping


class _Call:
    """One submitted call; its scopes are touched on the event loop thread only."""

    __slots__ = ("args", "fn", "future", "interrupted", "scope", "wait_scope")

    def __init__(
        self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.interrupted = False
        self.scope: anyio.CancelScope | None = None
        self.wait_scope: anyio.CancelScope | None = None

    def interrupt(self) -> None:
        self.interrupted = True
        if self.scope is not None:
            self.scope.cancel()

    def unqueue(self) -> None:
        if self.wait_scope is not None:
            self.wait_scope.cancel()


class InterpreterExecutor(Executor):
    """A :class:`concurrent.futures.Executor` that runs calls in subinterpreters.

    For synchronous code (or ``loop.run_in_executor``) that wants the parallelism of
    :class:`~aiointerp.InterpreterPool`: each call runs in a warm interpreter with
    its own GIL. It behaves as the :mod:`concurrent.futures` documentation says an
    executor behaves: :meth:`submit` returns a :class:`~concurrent.futures.Future`,
    :meth:`map` is :meth:`Executor.map <concurrent.futures.Executor.map>` (with
    ``chunksize`` honoured: see there), :meth:`shutdown` waits for the calls
    submitted so far, and submitting after it raises :class:`RuntimeError`.
    Functions, arguments and results must be picklable or shareable, as for
    :meth:`InterpreterPool.run_sync <aiointerp.InterpreterPool.run_sync>`; failures
    to send them are set as the future's exception
    (:class:`~aiointerp.NotShareableError`).

    A private thread, ``aiointerp-executor``, runs an asyncio event loop with an
    :class:`~aiointerp.InterpreterPool`, started on the first :meth:`submit`; the
    options mean what they mean for that pool, except ``interrupt_on_cancel``.
    ``with InterpreterExecutor() as executor:`` shuts it down at the end of the
    block. At interpreter exit, executors still open are shut down, and the calls
    submitted to them finish first. If that thread cannot start (the process is out
    of file descriptors or threads), or the pool's first worker cannot (the
    ``initializer`` raised: the pool opens only once a worker started, as
    :class:`~aiointerp.InterpreterPool` does with an initializer), :meth:`submit`
    raises :class:`~concurrent.futures.BrokenExecutor`, with the cause (the
    initializer's exception) as its ``__cause__``, and the executor stays broken.

    :param max_workers: the most calls (and interpreters) at once; default
        :func:`os.cpu_count`
    :param initializer: a picklable function run once in each new interpreter
    :param initargs: positional arguments for ``initializer``
    :param cancel_grace: seconds an interrupted call may take to stop (see
        :meth:`interrupt`)
    :param min_idle: idle interpreters kept ready (see
        :class:`~aiointerp.InterpreterPool`)
    :param idle_timeout: seconds after which an idle interpreter is destroyed
    :param max_tasks_per_worker: replace an interpreter after this many calls
    :param interrupt_on_cancel: ``future.cancel()`` also stops running calls (see
        below); the default ``False`` keeps the standard behaviour
    :param forward_logging: hand the log records and warnings of the calls to this
        process's :mod:`logging` and :mod:`warnings` (see
        :class:`~aiointerp.InterpreterPool`)
    :param kind: what runs the calls, as for :class:`~aiointerp.InterpreterPool`:
        ``"interpreter"`` (the default: subinterpreters of this process) or
        ``"process"`` (warm child processes, where every extension module loads;
        a call that does not stop within ``cancel_grace`` after it was interrupted
        is killed with its process, and its slot freed at once)
    :param forward_output: write what the calls write to ``sys.stdout`` and
        ``sys.stderr`` to this process's current ones (see
        :class:`~aiointerp.InterpreterPool`)
    :raises ValueError: ``max_workers`` is not positive, or another option is
        out of range, or ``kind`` is unknown

    .. rubric:: Cancellation

    By default ``future.cancel()`` follows the standard: it cancels a call that
    waits for a free interpreter (the call never runs) and returns ``False`` for a
    running one. Cancelling an ``await loop.run_in_executor(...)`` (a timeout of
    :func:`asyncio.wait_for`, a cancelled task) then cancels queued calls only.

    With ``interrupt_on_cancel=True``, ``future.cancel()`` of a running call
    interrupts the code inside its interpreter (:class:`~aiointerp.Interrupted` is
    raised there, ``finally`` blocks run) and returns ``True`` at once, without
    blocking the thread that called it (an event loop's, with ``run_in_executor``).
    From then on ``cancelled()`` and ``done()`` are ``True``; ``result()`` and
    ``exception()`` wait until the code has stopped (or ``cancel_grace`` passed)
    before they raise :class:`~concurrent.futures.CancelledError`, and the
    done-callbacks, :func:`~concurrent.futures.wait` and
    :func:`~concurrent.futures.as_completed` see the future at that moment. So
    ``await asyncio.wait_for(loop.run_in_executor(executor, fn), 5)`` stops ``fn``
    when it times out; the interpreter is replaced and the slot freed once the code
    stopped. A call whose result was already being delivered when ``cancel()`` came
    ends cancelled too (the result is dropped). :meth:`shutdown` with
    ``cancel_futures=True`` still cancels only the calls that have not started.

    :meth:`interrupt` stops a running call whatever the option: without it, the
    future's exception becomes :class:`~concurrent.futures.CancelledError`.

    Done-callbacks of the futures run on the executor's event-loop thread: keep
    them short and never block there (waiting for another future of the same
    executor would deadlock).
    """

    __module__ = "aiointerp"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        cancel_grace: float = 1.0,
        min_idle: int = 0,
        idle_timeout: float | None = 30.0,
        max_tasks_per_worker: int | None = None,
        interrupt_on_cancel: bool = False,
        forward_logging: bool = True,
        kind: str = "interpreter",
        forward_output: bool = True,
    ) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        # validates the options and pickles the initializer; opened on the loop thread
        self._pool = InterpreterPool(
            max_workers,
            min_idle=min_idle,
            idle_timeout=idle_timeout,
            max_tasks_per_worker=max_tasks_per_worker,
            initializer=initializer,
            initargs=initargs,
            cancel_grace=cancel_grace,
            forward_logging=forward_logging,
            kind=kind,
            forward_output=forward_output,
        )
        self._lock = threading.RLock()  # future.cancel() runs _on_done
        self._shutdown = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._inbox: deque[Callable[[], object]] = deque()
        self._wakeup: anyio.Event | None = None
        self._stop_requested = False
        self._active = 0  # call tasks alive
        self._limiter: anyio.CapacityLimiter | None = None
        self._start_error: BaseException | None = None
        self._calls: dict[Future[Any], _Call] = {}
        self._interrupt_on_cancel = interrupt_on_cancel

    @property
    def max_workers(self) -> int:
        """The most calls that run at once."""
        return self._pool.max_workers

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in an interpreter; return its future.

        :param fn: a synchronous, picklable callable
        :param args: positional arguments for ``fn``
        :param kwargs: keyword arguments for ``fn`` (sent with
            :func:`functools.partial`)
        :return: a :class:`~concurrent.futures.Future` of the call
        :raises RuntimeError: the executor is shut down, or the interpreter is
            exiting
        :raises ~concurrent.futures.BrokenExecutor: the executor's thread or its
            event loop could not start (too many open files, no more threads), or
            its first worker could not (the ``initializer`` raised); the error (the
            initializer's exception) is its ``__cause__``. The executor is broken
            from then on: every later :meth:`submit` raises it again
            (:meth:`shutdown` still works)
        """
        future: Future[T]
        if self._interrupt_on_cancel:
            future = _InterruptibleFuture()
        else:
            future = Future()
        if kwargs:
            import functools

            call = _Call(future, functools.partial(fn, *args, **kwargs), ())
        else:
            call = _Call(future, fn, args)
        if isinstance(future, _InterruptibleFuture):
            future._stop = lambda: self._interrupt_running(call)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _exiting:
                raise RuntimeError(
                    "cannot schedule new futures after interpreter shutdown"
                )
            self._ensure_started()
            self._calls[future] = call
            self._post(lambda: self._spawn(call))
        future.add_done_callback(self._on_done)
        return future

    def interrupt(self, future: Future[Any]) -> bool:
        """Cancel a call of this executor, interrupting it if it already runs.

        A pending call is cancelled as by ``future.cancel()``. A running call is
        interrupted inside its interpreter (:class:`~aiointerp.Interrupted` is
        raised there); once it stopped, or after ``cancel_grace`` seconds, the
        future's exception is set to :class:`concurrent.futures.CancelledError`.
        (``future.cancelled()`` stays ``False``: the standard reserves it for calls
        that never ran.) The interpreter is then replaced. With
        ``interrupt_on_cancel=True`` this is ``future.cancel()``: the future ends
        cancelled.

        :param future: a future returned by :meth:`submit`
        :return: ``True`` if the call was cancelled or is being interrupted,
            ``False`` if it had already finished or been cancelled (or is not a call
            of this executor)
        """
        with self._lock:
            call = self._calls.get(future)
        if call is None or future.done():  # finished or cancelled, or not ours
            return False
        if future.cancel():  # outside the lock: runs the done-callbacks
            return True
        with self._lock:
            if future.done() or future not in self._calls:
                return False
            self._post(call.interrupt)
        return True

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """Return an iterator over ``fn(*args)`` for each tuple of arguments.

        :meth:`concurrent.futures.Executor.map`: the calls are submitted at once
        (with ``buffersize``, Python 3.14+, at most that many ahead of the
        iterator), results come in order, ``timeout`` counts from this call, and an
        exception is raised when the iterator reaches its item. Closing the iterator
        early cancels the calls not started (and, with ``interrupt_on_cancel=True``,
        interrupts the running ones).

        :param fn: a synchronous, picklable callable
        :param iterables: one iterable per argument of ``fn``
        :param timeout: seconds, from this call, for all the results
        :param chunksize: items sent and run per call: with ``chunksize`` > 1, one
            round trip runs ``fn`` over a batch of items in an interpreter (the
            items are pickled together), for functions so short that the round trip
            would dominate; the results still come one by one, and an exception is
            raised at its own item (the results before it first, unlike
            ``ProcessPoolExecutor``), with a note naming the item's index and its
            tuple of arguments (``aiointerp: raised by item 5 of the map: (5,)``)
        :param buffersize: the standard's, on Python 3.14+
        :return: an iterator over the results
        :raises TypeError: ``chunksize`` is not an int, ``fn`` is async, or
            ``buffersize`` is given before Python 3.14
        :raises ValueError: ``chunksize`` is below 1
        """
        chunksize = validate_chunksize(chunksize)
        options: dict[str, Any] = {}
        if buffersize is not None:
            options["buffersize"] = buffersize  # TypeError before 3.14, as the base's
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout, **options)
        reject_async(fn)
        sent: deque[list[Any]] = deque()

        def batches() -> Iterator[list[Any]]:
            for batch in itertools.batched(
                zip(*iterables, strict=False), chunksize, strict=False
            ):
                items = list(batch)  # a list: pickled in one blob
                sent.append(items)
                yield items

        outcomes = super().map(
            Batch(fn, star=True), batches(), timeout=timeout, **options
        )
        return _batch_results(outcomes, fn, sent)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting calls; free the interpreters once the submitted calls end.

        :param wait: block until every submitted call finished and the
            interpreters and the executor's thread are gone
        :param cancel_futures: cancel the calls that have not started running
        """
        with self._lock:
            self._shutdown = True
            pending = list(self._calls.values()) if cancel_futures else []
            thread = self._thread
            if self._loop is not None and not self._stopping:
                self._stopping = True
                # the loop ends once no call is left, serving the inbox until then
                self._post(self._request_stop)
        for call in pending:  # outside the lock: cancel() runs the done-callbacks
            # the standard's cancel(): never a running call, whatever the option
            Future.cancel(call.future)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- the event loop thread -------------------------------------------------------

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        """Start the loop thread (called with ``self._lock`` held); wait until it serves.

        Raises :class:`~concurrent.futures.BrokenExecutor` if the thread or its loop
        cannot start, then and on every later call (see :meth:`submit`).
        """
        if self._loop is not None:
            return self._loop
        if self._start_error is None:
            ready = threading.Event()
            thread = threading.Thread(
                target=self._run_loop, args=(ready,), name="aiointerp-executor"
            )
            try:
                thread.start()  # RuntimeError "can't start new thread"
            except Exception as exc:
                self._start_error = exc
            else:
                ready.wait()
                if self._loop is not None:
                    self._thread = thread
                    _live.add(self)
                    return self._loop
                # it failed before serving, without taking the lock: join cannot block
                thread.join()
        error = self._start_error
        assert error is not None
        if isinstance(error, BrokenWorkerError):
            # the pool's opening: its first worker could not start
            raise BrokenExecutor(
                f"the executor's workers could not start: {error}; this executor is "
                "broken: shut it down, and remove the cause before you create "
                "another"
            ) from (error.__cause__ or error)  # the initializer's exception...
        raise BrokenExecutor(
            f"the executor's event loop thread failed to start "
            f"({type(error).__name__}: {error}); this executor is broken: shut it down "
            "and create a new one once the cause (too many open files or threads, "
            "not enough memory) is gone"
        ) from error

    def _run_loop(self, ready: threading.Event) -> None:
        try:
            anyio.run(self._serve, ready, backend="asyncio")
        except BaseException as exc:
            if not ready.is_set():  # failed to start (no fds...): the submitter raises
                self._start_error = exc
                ready.set()
                return  # no call was accepted, and the submitter holds the lock
            raise  # pragma: no cover - a bug of ours
        finally:
            if self._start_error is None:  # it served: fail what the loop left
                self._fail_leftovers()

    def _post(self, action: Callable[[], object]) -> None:
        """Have the loop's main task run ``action`` (from any thread; never blocks).

        Called with ``self._lock`` held, for a call still in ``self._calls`` or
        before ``_request_stop``: the loop runs until both are over.
        """
        assert self._loop is not None
        self._inbox.append(action)
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._limiter = anyio.CapacityLimiter(self._pool.max_workers)
        async with self._pool, anyio.create_task_group() as tg:
            self._tg = tg
            self._loop = asyncio.get_running_loop()
            ready.set()
            while True:
                self._wakeup = anyio.Event()
                while self._inbox:
                    self._inbox.popleft()()
                if self._stop_requested and not self._active:
                    break
                await self._wakeup.wait()
        # every call has ended (the inbox stays served until then); the pool closed

    def _interrupt_running(self, call: _Call) -> None:
        """``cancel()`` of a running call (any thread): have the loop interrupt it."""
        with self._lock:
            if call.future in self._calls:  # else its task is ending: it settles
                self._post(call.interrupt)

    def _request_stop(self) -> None:
        self._stop_requested = True

    def _spawn(self, call: _Call) -> None:
        assert self._tg is not None
        self._active += 1
        self._tg.start_soon(self._run, call)

    async def _run(self, call: _Call) -> None:
        future = call.future
        limiter = self._limiter
        assert limiter is not None
        try:
            acquired = False
            with anyio.CancelScope() as call.wait_scope:
                if not future.cancelled():  # else: cancelled before we got here
                    await limiter.acquire()
                    acquired = True
            call.wait_scope = None
            try:
                # False (and wait()/as_completed() notified) if cancelled while queued
                if not future.set_running_or_notify_cancel():
                    return
                with anyio.CancelScope() as call.scope:
                    if call.interrupted:
                        call.scope.cancel()
                    try:
                        result = await self._pool.run_sync(call.fn, *call.args)
                    except Exception as exc:
                        _settle(future, _raised_stop_iteration(exc), failed=True)
                    else:
                        _settle(future, result)
                if call.scope.cancelled_caught:
                    _settle(
                        future,
                        CancelledError("the call was interrupted by interrupt()"),
                        failed=True,
                    )
            finally:
                if acquired:
                    limiter.release()
        finally:
            with self._lock:
                self._calls.pop(future, None)
            if not future.done():  # pragma: no cover - the loop was torn down
                future.set_exception(BrokenExecutor("the executor's event loop ended"))
            self._active -= 1
            self._wake()

    def _on_done(self, future: Future[Any]) -> None:
        """Done-callback: a call cancelled while queued leaves the queue at once."""
        if not future.cancelled():
            return
        with self._lock:
            call = self._calls.get(future)
            if call is not None:
                self._post(call.unqueue)

    def _fail_leftovers(self) -> None:
        with self._lock:
            calls = list(self._calls.values())
            self._calls.clear()
            self._loop = None
        for call in calls:  # pragma: no cover - only if the loop died
            if _stopping(call.future):
                call.future._stopped()  # type: ignore[attr-defined]
            elif call.future.set_running_or_notify_cancel():
                call.future.set_exception(
                    BrokenExecutor("the executor's event loop ended")
                )


def _settle(future: Future[Any], value: Any, failed: bool = False) -> None:
    """Set the outcome of a call that ran, unless ``cancel()`` stopped it meanwhile."""
    try:
        if failed:
            future.set_exception(value)
        else:
            future.set_result(value)
    except InvalidStateError:  # cancelled while running: the future is stopping
        if not isinstance(future, _InterruptibleFuture):  # pragma: no cover
            raise
        future._stopped()


def _raised_stop_iteration(exc: Exception) -> Exception:
    """The ``StopIteration`` the function raised, if the pool's coroutines turned it
    into ``RuntimeError`` (PEP 479); else ``exc``.

    A future's exception may be a ``StopIteration``, as with ``ThreadPoolExecutor``.
    The conversion made the rebuilt exception (raised in this process, so with a
    traceback) the cause; a ``RuntimeError`` raised inside the interpreter has its
    cause rebuilt without one, and stays as it is.
    """
    cause = exc.__cause__
    if (
        type(exc) is RuntimeError
        and isinstance(cause, StopIteration)
        and exc.__context__ is cause
        and cause.__traceback__ is not None
    ):
        return cause
    return exc


def _batch_results(
    outcomes: Iterator[BatchOutcome], fn: object, sent: deque[list[Any]]
) -> Generator[Any]:
    """The per-item results of :meth:`InterpreterExecutor.map`'s batches, in order."""
    first = 0
    try:
        for outcome in outcomes:
            items = sent.popleft()
            values, error = decode(outcome, fn, first, items)
            yield from values
            if error is not None:
                raise error
            first += len(items)
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:  # cancels the batches not consumed, as the base's
            close()


def _python_exit() -> None:
    """Interpreter exit: shut executors down (their calls finish) before threads join."""
    global _exiting
    _exiting = True
    for executor in list(_live):
        executor.shutdown(wait=True)


_register_atexit: Any = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:  # runs before aiointerp._kinds._exit's hook (LIFO)
    _register_atexit(_python_exit)
else:  # pragma: no cover
    import atexit

    atexit.register(_python_exit)
