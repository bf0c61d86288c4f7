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

Batches. With ``chunksize`` > 1 the feeder pulls that many items at a time, and one
call (a :class:`aiointerp._inside._batch.Batch`) runs ``func`` over all of them in a worker;
the results come back together and the consumer takes them one by one. A *slot* is
one call, of one item or of one batch; ``max_in_flight`` counts slots. The results of
a slot after its first are buffered: ``__anext__`` returns them without a checkpoint
(as a buffered stream returns buffered bytes), so that a tiny function is not paced
by the event loop's iterations (a checkpoint costs several µs); the first result of
each slot is a full checkpoint, so the consumer yields at least once per batch.

Failures. The first failure (of a call, of an item of a batch, of the iterable, of
the pool) cancels the calls in flight. The consumer still receives the results
already computed that come before it (ordered: in input order, up to the first
missing result or the failing item; unordered: those already completed), then the
exception.

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

import itertools
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.abc
import anyio.lowlevel

from .._inside._batch import Batch, decode, item_note
from .._kinds._backends import thread_safe_call_soon
from .._wire import _encoding
from .._wire._errors import NotShareableError, PoolClosedError
from ._validate import reject_async

__all__ = ["Runner", "map_in_pool", "validate_chunksize"]

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")


class Runner(Protocol):
    """What a map needs of its pool (:class:`~aiointerp.InterpreterPool`, ``DaskPool``)."""

    @property
    def max_workers(self) -> int: ...

    @property
    def _tg(self) -> anyio.abc.TaskGroup | None:
        """The pool's long-lived task group, where the map's tasks run."""

    async def _ensure_running(self) -> None: ...

    async def run_sync(
        self,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        timeout: float | None = None,
    ) -> T: ...


class _Slot:
    """One call (one item or one batch): submitted, running or finished, its
    results not all consumed yet."""

    __slots__ = ("failed", "ok", "scope", "start", "values")

    def __init__(self, start: int) -> None:
        self.scope = anyio.CancelScope()
        self.start = start  # index of its first item in the whole map
        self.ok = False  # values holds results to deliver
        self.failed = False  # after its values, the consumer raises the failure
        self.values: list[Any] = []


class _MapState:
    """What the consumer and the background tasks share (the tasks hold only this)."""

    def __init__(
        self,
        pool: Runner,
        func: Callable[[Any], Any],
        source: Iterator[Any] | AsyncIterator[Any],
        ordered: bool,
        max_in_flight: int,
        timeout: float | None,
        chunksize: int,
    ) -> None:
        self.pool = pool
        self.func = func
        self.batch = Batch(func) if chunksize > 1 else None
        self.chunksize = chunksize
        self.source = source
        self.is_async = isinstance(source, AsyncIterator)
        self.ordered = ordered
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.pending: deque[_Slot] = deque()  # ordered: submitted, not consumed
        self.ready: deque[_Slot] = deque()  # unordered: finished, not consumed
        self.running: set[_Slot] = set()
        self.current: _Slot | None = None  # the slot whose results are being taken
        self.position = 0  # the next of its values to take
        self.next_index = 0  # index of the next item pulled from the source
        self.ahead = 0  # slots submitted and not yet consumed
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
        if isinstance(exc, StopAsyncIteration):
            # raised by __anext__ it would end the consumer's loop as if the map
            # were done, hiding the error and the results not delivered
            error = RuntimeError(
                "StopAsyncIteration was raised inside pool.map (see its cause): it "
                "would end the `async for` as if the items were exhausted"
            )
            error.__cause__ = exc
            exc = error
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

    async def pull(self) -> list[Any]:
        """The next items (``chunksize`` of them, fewer at the end of the source)."""
        if not self.is_async:
            source: Iterator[Any] = self.source  # type: ignore[assignment]
            items = list(itertools.islice(source, self.chunksize))
            await anyio.lowlevel.checkpoint()
            return items
        items = []
        async_source: AsyncIterator[Any] = self.source  # type: ignore[assignment]
        while len(items) < self.chunksize:
            try:
                items.append(await async_source.__anext__())
            except StopAsyncIteration:
                break
        return items

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
                    items = await self.pull()
                    if self.stopping:  # the consumer left while we waited
                        break
                    if items:
                        slot = _Slot(self.next_index)
                        self.next_index += len(items)
                        self.ahead += 1
                        self.running.add(slot)
                        if self.ordered:
                            self.pending.append(slot)
                        self.spawn(self.call, slot, items)
                    if len(items) < self.chunksize:
                        break
        except Exception as exc:  # the iterable raised, or the pool is closed
            self.fail(exc)
        except BaseException:  # the pool's task group is cancelled: it closes
            if not self.stopping:
                self.fail(PoolClosedError("the InterpreterPool was closed"))
            raise
        finally:
            self.exhausted = True
            self.task_done()

    async def call(self, slot: _Slot, items: list[Any]) -> None:
        error: Exception | None = None
        try:
            with slot.scope:
                if self.batch is None:
                    value = await self.pool.run_sync(
                        self.func, items[0], timeout=self.timeout
                    )
                    slot.values = [value]
                else:
                    outcome = await self._run_batch(self.batch, items)
                    slot.values, error = decode(outcome, self.func, slot.start, items)
                slot.ok = True
        except PoolClosedError as exc:
            self.fail(exc)
        except Exception as exc:  # name the item(s) in the error
            if len(items) == 1:
                exc.add_note(item_note(slot.start, items[0]))
            else:
                exc.add_note(
                    "aiointerp: raised by the batch of items "
                    f"{slot.start} to {slot.start + len(items) - 1} of the map"
                )
            self.fail(exc)
        finally:
            self.running.discard(slot)
            if error is not None:  # the results before the failing item go first
                slot.failed = True
                self.fail(error)
            if slot.ok and not self.ordered:
                self.ready.append(slot)
            self.task_done()

    async def _run_batch(self, batch: Batch, items: list[Any]) -> Any:
        # a list is never shareable: the items travel pickled, in one blob (faster
        # than sharing them one by one), loaded by the worker as arguments are
        try:
            return await self.pool.run_sync(batch, items, timeout=self.timeout)
        except NotShareableError:
            shared = tuple(items)  # memoryviews and the like cannot be pickled...
            if not _encoding.is_shareable(shared):
                raise
            # ...but cross as they are (the error came before any worker was taken)
            return await self.pool.run_sync(batch, shared, timeout=self.timeout)

    # -- the consumer -------------------------------------------------------------

    def take(self) -> _Slot | None:
        if self.ordered:
            if self.pending and self.pending[0].ok:
                return self.pending.popleft()
            return None
        return self.ready.popleft() if self.ready else None

    def has_value(self) -> bool:
        """A result of the slot being consumed is ready (no need to wait)."""
        slot = self.current
        return slot is not None and self.position < len(slot.values)

    def take_value(self) -> Any:
        """The next result of the current slot (:meth:`has_value` is true)."""
        slot = self.current
        assert slot is not None
        values = slot.values
        position = self.position
        self.position = position + 1
        if position + 1 == len(values) and not slot.failed:
            self.finish()  # the feeder may start the next call now
        return values[position]

    def finish(self) -> None:
        """The current slot is consumed: make room for the feeder."""
        self.current = None
        self.ahead -= 1
        self.room.set()

    async def next_result(self) -> Any:
        while True:
            slot = self.current
            if slot is None:
                slot = self.take()
                if slot is None:
                    if self.failure is not None:
                        raise self.failure
                    if self.exhausted and self.ahead == 0:
                        raise StopAsyncIteration
                    self.changed = anyio.Event()
                    await self.changed.wait()
                    continue
                self.current = slot
                self.position = 0
            if self.position < len(slot.values):
                return self.take_value()
            self.finish()
            if slot.failed:
                assert self.failure is not None
                raise self.failure

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
    state = _MapState(pool, func, source, ordered, max_in_flight, timeout, chunksize)
    return _MapIterator(state)
