"""The state of one :meth:`InterpreterPool.map`, shared by its consumer and its
background tasks (a feeder that pulls the items, and one task per call).

A *slot* is one call, of one item or of one batch (``chunksize`` > 1: a
:class:`aiointerp._inside._batch.Batch` runs ``func`` over its items in a worker);
``max_in_flight`` counts slots. The first failure (of a call, of an item of a
batch, of the iterable, of the pool) cancels the calls in flight; the consumer still
receives the results already computed that come before it (ordered: in input order,
up to the first missing result or the failing item; unordered: those already
completed), then the exception.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol, TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.abc
import anyio.lowlevel

from .._inside._batch import Batch, decode, item_note
from .._wire import _encoding
from .._wire._errors import NotShareableError, PoolClosedError

__all__ = ["MapState", "Runner", "Slot"]

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


class Slot:
    """One call (one item or one batch): submitted, running or finished, its
    results not all consumed yet."""

    __slots__ = ("failed", "ok", "scope", "start", "values")

    def __init__(self, start: int) -> None:
        self.scope = anyio.CancelScope()
        self.start = start  # index of its first item in the whole map
        self.ok = False  # values holds results to deliver
        self.failed = False  # after its values, the consumer raises the failure
        self.values: list[Any] = []


class MapState:
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
        self.pending: deque[Slot] = deque()  # ordered: submitted, not consumed
        self.ready: deque[Slot] = deque()  # unordered: finished, not consumed
        self.running: set[Slot] = set()
        self.current: Slot | None = None  # the slot whose results are being taken
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
                        slot = Slot(self.next_index)
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

    async def call(self, slot: Slot, items: list[Any]) -> None:
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

    def take(self) -> Slot | None:
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
