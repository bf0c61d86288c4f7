"""InterpreterExecutor: a :class:`concurrent.futures.Executor` over an
:class:`~aiointerp.InterpreterPool` (its thread: :mod:`aiointerp._executor_loop`,
its futures: :mod:`aiointerp._executor_futures`)."""

from __future__ import annotations

import functools
import itertools
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from ._executor_futures import InterruptibleFuture, batch_results
from ._executor_loop import Call, LoopThread
from ._host._map import validate_chunksize
from ._host._validate import reject_async
from ._inside._batch import Batch
from ._pool import InterpreterPool

__all__ = ["InterpreterExecutor"]

P = ParamSpec("P")
T = TypeVar("T")

_live: weakref.WeakSet[InterpreterExecutor] = weakref.WeakSet()
_exiting = False


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
        self._engine = LoopThread(self._pool)
        self._shutdown = False
        self._stopping = False
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
            future = InterruptibleFuture()
        else:
            future = Future()
        if kwargs:
            call = Call(future, functools.partial(fn, *args, **kwargs), ())
        else:
            call = Call(future, fn, args)
        engine = self._engine
        if isinstance(future, InterruptibleFuture):
            future._stop = lambda: engine.interrupt_running(call)
        with engine.lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _exiting:
                raise RuntimeError(
                    "cannot schedule new futures after interpreter shutdown"
                )
            engine.ensure_started()
            _live.add(self)
            engine.calls[future] = call
            engine.post(lambda: engine.spawn(call))
        future.add_done_callback(engine.on_done)
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
        engine = self._engine
        with engine.lock:
            call = engine.calls.get(future)
        if call is None or future.done():  # finished or cancelled, or not ours
            return False
        if future.cancel():  # outside the lock: runs the done-callbacks
            return True
        with engine.lock:
            if future.done() or future not in engine.calls:
                return False
            engine.post(call.interrupt)
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
        return batch_results(outcomes, fn, sent)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting calls; free the interpreters once the submitted calls end.

        :param wait: block until every submitted call finished and the
            interpreters and the executor's thread are gone
        :param cancel_futures: cancel the calls that have not started running
        """
        engine = self._engine
        with engine.lock:
            self._shutdown = True
            pending = list(engine.calls.values()) if cancel_futures else []
            thread = engine.thread
            if engine.loop is not None and not self._stopping:
                self._stopping = True
                # the loop ends once no call is left, serving the inbox until then
                engine.post(engine.request_stop)
        for call in pending:  # outside the lock: cancel() runs the done-callbacks
            # the standard's cancel(): never a running call, whatever the option
            Future.cancel(call.future)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()


def _python_exit() -> None:
    """Interpreter exit: shut executors down (their calls finish) before threads join."""
    global _exiting
    _exiting = True
    for executor in list(_live):
        executor.shutdown(wait=True)


# threading's own exit hooks run before the threads are joined (atexit's after);
# LIFO: this one runs before aiointerp._kinds._exit's
threading._register_atexit(_python_exit)  # type: ignore[attr-defined]
