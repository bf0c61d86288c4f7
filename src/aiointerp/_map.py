"""InterpreterPool.map: a bounded, cancellable stream of results.

Design. An async generator that runs its calls in a task group would have to
``yield`` inside that task group, which structured concurrency forbids (the cancel
scope would straddle the consumer's code: anyio's "cancel scope stack corruption",
trio issue #638, PEP 789). Instead the iterator is a plain object whose
:meth:`~_MapIterator.__anext__` only waits on an event; the calls (and a feeder task
that pulls items from the iterable) run as tasks of the pool's own long-lived task
group, the one its watcher owns. So ``async for result in pool.map(...)`` is safe on
asyncio and trio without ``async with``: nothing the consumer enters stays open
between two ``__anext__`` calls.

Clean-up. Leaving the loop with an exception raised by ``__anext__`` (a call
failed, the consumer was cancelled while waiting) cancels the calls in flight and
waits for them to stop before the exception propagates. :meth:`aclose` (directly, or
through :func:`contextlib.aclosing`) does the same after ``break``. An iterator
abandoned without :meth:`aclose` (``break``, or an exception in the loop body) is
garbage-collected at once on CPython; it then cancels its calls in the background.
The tasks reference only the shared :class:`_MapState`, never the iterator, so that
this can happen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import sniffio

from ._errors import PoolClosedError
from ._pool import InterpreterPool, _reject_async

__all__ = ["map_in_pool"]

T = TypeVar("T")


class _Slot:
    """One call: submitted, running or finished, its result not yet consumed."""

    __slots__ = ("done", "ok", "scope", "value")

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.done = False
        self.ok = False
        self.value: Any = None


class _MapState:
    """What the consumer and the background tasks share (the tasks hold only this)."""

    def __init__(
        self,
        pool: InterpreterPool,
        func: Callable[[Any], Any],
        source: Iterator[Any] | AsyncIterator[Any],
        ordered: bool,
        max_in_flight: int,
        timeout: float | None,
    ) -> None:
        self.pool = pool
        self.func = func
        self.source = source
        self.is_async = isinstance(source, AsyncIterator)
        self.ordered = ordered
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.pending: deque[_Slot] = deque()  # ordered: submitted, not consumed
        self.ready: deque[_Slot] = deque()  # unordered: finished, not consumed
        self.running: set[_Slot] = set()
        self.ahead = 0  # calls submitted and not yet consumed
        self.tasks = 0  # background tasks alive (feeder and calls)
        self.failure: BaseException | None = None
        self.exhausted = False  # the feeder is done: no more calls will start
        self.stopping = False
        self.feed_scope = anyio.CancelScope()
        self.changed = anyio.Event()  # the consumer waits on it
        self.room = anyio.Event()  # the feeder waits on it
        self.idle = anyio.Event()  # set when no background task is left

    # -- called on the event loop, from any task ------------------------------------

    def fail(self, exc: BaseException) -> None:
        """Keep the first failure; cancel everything in flight; wake the consumer."""
        if self.failure is None:
            self.failure = exc
        self.cancel_all()

    def cancel_all(self) -> None:
        self.stopping = True
        self.feed_scope.cancel()
        for slot in self.running:
            slot.scope.cancel()
        self.changed.set()
        self.room.set()

    def task_done(self) -> None:
        self.tasks -= 1
        if self.tasks == 0:
            self.idle.set()
        self.changed.set()

    def spawn(self, async_fn: Callable[..., Any], *args: Any) -> None:
        tg = self.pool._tg  # the task group of the pool's watcher
        if tg is None:
            raise PoolClosedError("the InterpreterPool is closed; create a new one")
        self.tasks += 1
        try:
            tg.start_soon(async_fn, *args)
        except BaseException:
            self.task_done()
            raise

    # -- background tasks -------------------------------------------------------------

    async def feed(self) -> None:
        """Pull items while there is room ahead of the consumer; start their calls."""
        try:
            with self.feed_scope:
                while True:
                    while self.ahead >= self.max_in_flight and not self.stopping:
                        self.room = anyio.Event()
                        await self.room.wait()
                    if self.stopping:
                        break
                    if self.is_async:
                        try:
                            item = await self.source.__anext__()  # type: ignore[union-attr]
                        except StopAsyncIteration:
                            break
                    else:
                        try:
                            item = next(self.source)  # type: ignore[arg-type]
                        except StopIteration:
                            break
                        await anyio.lowlevel.checkpoint()
                    if self.stopping:  # the consumer left while we waited
                        break
                    slot = _Slot()
                    self.ahead += 1
                    self.running.add(slot)
                    if self.ordered:
                        self.pending.append(slot)
                    self.spawn(self.call, slot, item)
        except Exception as exc:  # the iterable raised, or the pool is closed
            self.fail(exc)
        except BaseException:  # the pool's task group is cancelled: it closes
            if not self.stopping:
                self.fail(PoolClosedError("the InterpreterPool was closed"))
            raise
        finally:
            self.exhausted = True
            self.task_done()

    async def call(self, slot: _Slot, item: Any) -> None:
        try:
            with slot.scope:
                slot.value = await self.pool.run_sync(
                    self.func, item, timeout=self.timeout
                )
                slot.ok = True
        except Exception as exc:
            self.fail(exc)
        finally:
            slot.done = True
            self.running.discard(slot)
            if slot.ok and not self.ordered:
                self.ready.append(slot)
            self.task_done()

    # -- the consumer ---------------------------------------------------------------------

    def take(self) -> _Slot | None:
        if self.ordered:
            if self.pending and self.pending[0].done:
                return self.pending.popleft()
            return None
        return self.ready.popleft() if self.ready else None

    async def next_result(self) -> Any:
        while True:
            if self.failure is not None:
                raise self.failure
            slot = self.take()
            if slot is not None:
                self.ahead -= 1
                self.room.set()
                return slot.value
            if self.exhausted and self.ahead == 0:
                raise StopAsyncIteration
            self.changed = anyio.Event()
            await self.changed.wait()

    async def stop(self) -> None:
        """Cancel what is in flight and wait until every background task ended."""
        self.cancel_all()
        with anyio.CancelScope(shield=True):
            while self.tasks:
                self.idle = anyio.Event()
                await self.idle.wait()


class _MapIterator(AsyncIterator[T], Generic[T]):
    """The async iterator returned by :meth:`InterpreterPool.map`."""

    def __init__(self, state: _MapState) -> None:
        self._state = state
        self._started = False
        self._closed = False
        self._running = False
        self._call_soon: Callable[[Callable[[], object]], object] | None = None

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        if self._running:
            raise RuntimeError("anext(): the map iterator is already being awaited")
        self._running = True
        state = self._state
        try:
            await anyio.lowlevel.checkpoint()
            if not self._started:
                self._started = True
                await state.pool._ensure_running()
                self._call_soon = _thread_safe_call_soon()
                state.spawn(state.feed)
            value: T = await state.next_result()
            return value
        except BaseException:
            # StopAsyncIteration (nothing is left), a call's failure, or the
            # consumer's cancellation: stop the rest before the exception propagates
            self._closed = True
            await state.stop()
            raise
        finally:
            self._running = False

    async def aclose(self) -> None:
        """Cancel the calls in flight (interrupting them) and wait until they stop.

        The iterator is exhausted afterwards. Closing twice is harmless.
        """
        self._closed = True
        if self._started:
            await self._state.stop()
        else:
            await anyio.lowlevel.checkpoint()

    def __del__(self) -> None:
        # abandoned without aclose(): cancel the calls in the background
        state = self._state
        if self._call_soon is None or not state.tasks or state.stopping:
            return
        try:
            self._call_soon(state.cancel_all)
        except Exception:  # the event loop is gone, and the pool with it
            pass


def _thread_safe_call_soon() -> Callable[[Callable[[], object]], object]:
    """A way to run a callback on the running event loop from any thread (for __del__)."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio

    return asyncio.get_running_loop().call_soon_threadsafe


def map_in_pool(
    pool: InterpreterPool,
    func: Callable[[Any], T],
    iterable: Iterable[Any] | AsyncIterable[Any],
    *,
    ordered: bool = True,
    max_in_flight: int | None = None,
    timeout: float | None = None,
) -> AsyncIterator[T]:
    """Return an async iterator over ``func(item)`` for each item, computed in ``pool``.

    The implementation of :meth:`InterpreterPool.map` (see there). Nothing runs until
    the first ``__anext__``; then a background task of the pool pulls items from
    ``iterable`` (sync or async) and starts their calls, never more than
    ``max_in_flight`` ahead of the consumer: a call counts until the consumer has
    received its result.

    :param pool: the pool whose interpreters run the calls
    :param func: a synchronous, picklable callable taking one item
    :param iterable: the items; a sync or an async iterable, consumed lazily by a
        background task of the pool
    :param ordered: results in input order (``True``) or as they complete
    :param max_in_flight: most calls submitted and not yet consumed (default:
        ``pool.max_workers``)
    :param timeout: per-call timeout, as for :meth:`InterpreterPool.run_sync`
    :return: an async iterator with an ``aclose()`` method
    :raises TypeError: ``func`` is async or not callable, or ``iterable`` is not
        iterable (raised at once)
    :raises ValueError: ``max_in_flight`` is below 1 or ``timeout`` is negative

    Errors and cancellation: the first exception of a call (or of the iterable)
    cancels the calls in flight, which are interrupted, and is raised by the next
    ``__anext__`` once they stopped; results not consumed yet are dropped. A
    cancelled consumer waiting in ``__anext__`` cancels the calls in flight the same
    way. :meth:`aclose` does it after ``break``; an iterator that is dropped
    without it cancels its calls in the background when it is garbage-collected.
    """
    _reject_async(func)
    if max_in_flight is None:
        max_in_flight = pool.max_workers
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
    source: Iterator[Any] | AsyncIterator[Any]
    if isinstance(iterable, AsyncIterable):
        source = aiter(iterable)
    else:
        source = iter(iterable)
    state = _MapState(pool, func, source, ordered, max_in_flight, timeout)
    return _MapIterator(state)
