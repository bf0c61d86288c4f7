"""The futures of :class:`~aiointerp.InterpreterExecutor`: how a call's outcome is
set, and the future of ``interrupt_on_cancel=True``, whose ``cancel()`` also stops a
running call; the per-item results of ``map``'s batches."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import _base as _futures
from typing import TYPE_CHECKING, Any, TypeVar

from ._inside._batch import decode

if TYPE_CHECKING:
    from ._inside._batch import BatchOutcome

__all__ = [
    "InterruptibleFuture",
    "batch_results",
    "raised_stop_iteration",
    "settle",
    "stopping",
]

T = TypeVar("T")


class InterruptibleFuture(Future[T]):
    """The future of a call of an executor with ``interrupt_on_cancel=True``.

    Same as :class:`~concurrent.futures.Future`, except that :meth:`cancel` also
    cancels a running call: it interrupts the code and returns ``True`` without
    waiting. The future is cancelled from then on; :meth:`result`,
    :meth:`exception`, the done-callbacks, :func:`~concurrent.futures.wait` and
    :func:`~concurrent.futures.as_completed` see it once the code has stopped.
    """

    # cancel() never blocks: it runs on event-loop threads (asyncio's wrap_future)
    # and on the executor's thread (done-callbacks). A cancelled running call waits
    # in the standard's intermediate state, CANCELLED, until the executor sees the
    # code stopped (_stopped) and moves it to CANCELLED_AND_NOTIFIED, as an executor
    # does for a call cancelled while queued: wait() and as_completed() only count
    # that state, and result(), exception() and the done-callbacks wait for it too,
    # so the code's cleanup has run before anyone is told the call is cancelled.

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


def stopping(future: Future[Any]) -> bool:
    return isinstance(future, InterruptibleFuture) and future._stopping


def settle(future: Future[Any], value: Any, failed: bool = False) -> None:
    """Set the outcome of a call that ran, unless ``cancel()`` stopped it meanwhile."""
    try:
        if failed:
            future.set_exception(value)
        else:
            future.set_result(value)
    except InvalidStateError:  # cancelled while running: the future is stopping
        if not isinstance(future, InterruptibleFuture):  # a standard future
            raise  # cannot be cancelled while it runs: set twice, a bug of ours
        future._stopped()


def raised_stop_iteration(exc: Exception) -> Exception:
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


def batch_results(
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
