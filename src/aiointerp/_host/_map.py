"""InterpreterPool.map (and ``DaskPool.map``): a bounded, cancellable stream of
results, as that method documents; its state is :mod:`aiointerp._host._mapstate`."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from .._kinds._backends import thread_safe_call_soon
from ._mapstate import MapState, Runner
from ._validate import reject_async

__all__ = ["Runner", "map_in_pool", "validate_chunksize"]

T = TypeVar("T")


class _MapIterator(AsyncIterator[T], Generic[T]):
    """The async iterator returned by :meth:`InterpreterPool.map`."""

    # An async generator that runs its calls in a task group would have to yield
    # inside that task group, which structured concurrency forbids (the cancel scope
    # would straddle the consumer's code: anyio's "cancel scope stack corruption",
    # trio issue #638, PEP 789). So the iterator is a plain object whose __anext__
    # only waits on an event; the calls and the feeder run as tasks of the pool's
    # own long-lived task group, the one its watcher owns: nothing the consumer
    # enters stays open between two __anext__ calls, and `async for` is safe on
    # asyncio and trio without `async with`.
    #
    # The results of a slot after its first are buffered: __anext__ returns them
    # without a checkpoint (as a buffered stream returns buffered bytes), so that a
    # tiny function is not paced by the event loop's iterations (a checkpoint costs
    # several µs); the first result of each slot is a full checkpoint, so the
    # consumer yields at least once per batch.
    #
    # Leaving the loop with an exception raised by __anext__ cancels the calls in
    # flight and waits for them to stop before it propagates; aclose() does the same
    # after `break`. An iterator abandoned without aclose() is garbage-collected at
    # once on CPython and then cancels its calls in the background: the tasks hold
    # only the shared MapState, never the iterator, so that this can happen.

    def __init__(self, state: MapState) -> None:
        self._state = state
        self._started = False
        self._closed = False
        self._running = False
        self._call_soon: Callable[[Callable[[], object]], object] | None = None

    async def __anext__(self) -> T:
        state = self._state
        if state.has_value() and not self._closed and not self._running:
            # a buffered result of a batch: no checkpoint, no await (the hot path)
            return state.take_value()  # type: ignore[no-any-return]
        if self._closed:
            raise StopAsyncIteration
        if self._running:
            raise RuntimeError("anext(): the map iterator is already being awaited")
        self._running = True
        try:
            await anyio.lowlevel.checkpoint()
            if not self._started:
                self._started = True
                await state.pool._ensure_running()
                self._call_soon = thread_safe_call_soon()
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


def validate_chunksize(chunksize: object) -> int:
    """Return ``chunksize`` if it is a valid batch size; raise otherwise."""
    if not isinstance(chunksize, int) or isinstance(chunksize, bool):
        raise TypeError(
            f"chunksize must be an int (items per round trip), "
            f"not {type(chunksize).__name__}"
        )
    if chunksize < 1:
        raise ValueError(f"chunksize must be at least 1, not {chunksize}")
    return chunksize


def map_in_pool(
    pool: Runner,
    func: Callable[[Any], T],
    iterable: Iterable[Any] | AsyncIterable[Any],
    *,
    ordered: bool = True,
    max_in_flight: int | None = None,
    timeout: float | None = None,
    chunksize: int = 1,
) -> AsyncIterator[T]:
    """Return an async iterator over ``func(item)`` for each item, computed in ``pool``.

    The implementation of :meth:`InterpreterPool.map` (see there). Nothing runs until
    the first ``__anext__``; then a background task of the pool pulls items from
    ``iterable`` (sync or async) and starts their calls, never more than
    ``max_in_flight`` ahead of the consumer: a call counts until the consumer has
    received its (last) result.

    :param pool: the pool whose interpreters run the calls
    :param func: a synchronous, picklable callable taking one item
    :param iterable: the items; a sync or an async iterable, consumed lazily by a
        background task of the pool
    :param ordered: results in input order (``True``) or as they complete
    :param max_in_flight: most calls submitted and not yet consumed, a batch
        counting as one call (default: ``pool.max_workers``, twice that with
        ``chunksize`` > 1 so that each worker has its next batch waiting)
    :param timeout: per-call timeout, as for :meth:`InterpreterPool.run_sync`; with
        ``chunksize`` > 1 it applies to each batch
    :param chunksize: items sent and run per call; the results still come one by one
    :return: an async iterator with an ``aclose()`` method
    :raises TypeError: ``func`` is async or not callable, ``iterable`` is not
        iterable, or ``chunksize`` is not an int (raised at once)
    :raises ValueError: ``max_in_flight`` or ``chunksize`` is below 1, or
        ``timeout`` is negative (raised at once)

    Errors and cancellation: the first exception of a call, of an item of a batch
    or of the iterable cancels the calls in flight, which are interrupted. The next
    ``__anext__`` delivers the results already computed that come before it, then
    raises it once the calls stopped. An exception raised for one item carries a
    note naming the item and its index; one raised for a whole batch (a timeout)
    names the batch's range. A ``StopAsyncIteration`` raised by ``func`` is raised
    as the cause of a ``RuntimeError``, as an async generator does, so that it
    cannot end the loop as if the items were exhausted. A cancelled consumer waiting
    in ``__anext__`` cancels the calls in flight the same way. :meth:`aclose` does it after ``break``; an
    iterator that is dropped without it cancels its calls in the background when it
    is garbage-collected.
    """
    reject_async(func)
    chunksize = validate_chunksize(chunksize)
    if max_in_flight is None:
        max_in_flight = pool.max_workers if chunksize == 1 else 2 * pool.max_workers
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
    source: Iterator[Any] | AsyncIterator[Any]
    if isinstance(iterable, AsyncIterable):
        source = aiter(iterable)
    else:
        source = iter(iterable)
    state = MapState(pool, func, source, ordered, max_in_flight, timeout, chunksize)
    return _MapIterator(state)
