"""InterpreterPool.map: results, backpressure, errors, early exit and cancellation."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing

import _funcs_batch as batch
import _funcs_integrations as funcs
import anyio
import pytest
from _handshake import ready_byte

import aiointerp

pytestmark = pytest.mark.anyio

MakePipe = Callable[[], tuple[int, int]]


@pytest.fixture
def pipe() -> Iterator[MakePipe]:
    """Make pipes whose fds workers can write to; close them after the test."""
    fds: list[int] = []

    def make() -> tuple[int, int]:
        r, w = os.pipe()
        fds.extend((r, w))
        return r, w

    yield make
    for fd in fds:
        os.close(fd)


async def read_byte(fd: int) -> bytes:
    with anyio.fail_after(30):  # hang guard
        await anyio.wait_readable(fd)
    return os.read(fd, 1)


async def test_ordered_results() -> None:
    async with aiointerp.InterpreterPool(2) as pool:
        results = [r async for r in pool.map(funcs.square, range(20))]
    assert results == [x * x for x in range(20)]


async def test_unordered_results_are_complete() -> None:
    async with aiointerp.InterpreterPool(2) as pool:
        results = [r async for r in pool.map(funcs.square, range(20), ordered=False)]
    assert sorted(results) == [x * x for x in range(20)]


async def test_unordered_yields_in_completion_order(pipe: MakePipe) -> None:
    go_r, go_w = pipe()
    # item 1 finishes at once; item 0 waits for our go byte
    items = [("fail_after", go_r), ("square", 3)]
    async with aiointerp.InterpreterPool(2) as pool:
        results = pool.map(funcs.scenario, items, ordered=False)
        assert await anext(results) == 9
        os.write(go_w, b"g")
        with pytest.raises(ValueError, match="failed on purpose"):
            await anext(results)


async def test_async_iterable_source() -> None:
    async def numbers() -> AsyncIterator[int]:
        for x in range(10):
            await anyio.lowlevel.checkpoint()
            yield x

    async with aiointerp.InterpreterPool(2) as pool:
        results = [r async for r in pool.map(funcs.square, numbers())]
    assert results == [x * x for x in range(10)]


async def test_empty_source() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        assert [r async for r in pool.map(funcs.square, [])] == []
        assert pool.stats().completed == 0


@pytest.mark.parametrize("ordered", [True, False])
async def test_backpressure(ordered: bool) -> None:
    max_in_flight = 2
    pulled = 0

    def source() -> Iterator[int]:
        nonlocal pulled
        for x in range(8):
            pulled += 1
            yield x

    consumed = 0
    async with aiointerp.InterpreterPool(2) as pool:
        async for _ in pool.map(
            funcs.square, source(), ordered=ordered, max_in_flight=max_in_flight
        ):
            consumed += 1
            # let the feeder and the calls run as far as they can
            await anyio.wait_all_tasks_blocked()
            assert pulled == min(8, consumed + max_in_flight)
    assert consumed == 8


async def test_exception_cancels_the_calls_in_flight(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    go_r, go_w = pipe()
    items = [("spin", (started_w, stopped_w)), ("fail_after", go_r)]
    async with aiointerp.InterpreterPool(2, cancel_grace=30) as pool:
        results = pool.map(funcs.scenario, items)
        async with anyio.create_task_group() as tg:

            async def release_failure() -> None:
                assert await read_byte(started_r) == b"S"
                os.write(go_w, b"g")

            tg.start_soon(release_failure)
            with pytest.raises(ValueError, match="failed on purpose") as info:
                await anext(results)
        assert isinstance(info.value.__cause__, aiointerp.RemoteTraceback)
        # the spinning call was interrupted before the error reached us
        assert ready_byte(stopped_r) == b"I"
        stats = pool.stats()
        assert (stats.busy, stats.failed, stats.cancelled) == (0, 1, 1)
        with pytest.raises(StopAsyncIteration):
            await anext(results)


async def test_source_exception_is_raised() -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise RuntimeError("source broke")

    async with aiointerp.InterpreterPool(1) as pool:
        seen: list[int] = []

        async def consume() -> None:
            async for r in pool.map(funcs.square, numbers(), max_in_flight=1):
                seen.append(r)

        with pytest.raises(RuntimeError, match="source broke"):
            await consume()
        # max_in_flight=1: the source is asked for item 3 once result 2 was taken
        assert seen == [1, 4]


async def test_cancelled_consumer_interrupts_calls(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    async with aiointerp.InterpreterPool(2, cancel_grace=30) as pool:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_when_running() -> None:
                    assert await read_byte(started_r) == b"S"
                    scope.cancel()

                tg.start_soon(cancel_when_running)
                async for _ in pool.map(
                    funcs.spin_until_interrupted, [(started_w, stopped_w)]
                ):
                    pytest.fail("the call cannot return")
        assert scope.cancelled_caught
        assert ready_byte(stopped_r) == b"I"  # stopped before the cancel propagated
        stats = pool.stats()
        assert (stats.busy, stats.cancelled) == (0, 1)


async def test_break_and_aclose_interrupts_calls(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    items = [("square", 2), ("spin", (started_w, stopped_w)), ("square", 3)]
    async with aiointerp.InterpreterPool(2, cancel_grace=30) as pool:
        async with aclosing(pool.map(funcs.scenario, items)) as results:
            async for first in results:
                assert first == 4
                assert await read_byte(started_r) == b"S"
                break
        # aclose() returned: the spinning call has stopped
        assert ready_byte(stopped_r) == b"I"
        assert pool.stats().busy == 0
        assert pool.stats().cancelled >= 1
        with pytest.raises(StopAsyncIteration):
            await anext(results)


async def test_abandoned_iterator_cancels_calls(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    items = [("square", 2), ("spin", (started_w, stopped_w))]
    async with aiointerp.InterpreterPool(2, cancel_grace=30) as pool:
        async for first in pool.map(funcs.scenario, items):
            assert first == 4
            assert await read_byte(started_r) == b"S"
            break  # no aclose(): the dropped iterator cancels in the background
        gc.collect()
        assert await read_byte(stopped_r) == b"I"


async def test_exception_in_loop_body_cancels_calls(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    items = [("square", 2), ("spin", (started_w, stopped_w))]
    async with aiointerp.InterpreterPool(2, cancel_grace=30) as pool:

        async def consume() -> None:
            async for _ in pool.map(funcs.scenario, items):
                assert await read_byte(started_r) == b"S"
                raise KeyError("consumer failed")

        with pytest.raises(KeyError):
            await consume()
        gc.collect()
        assert await read_byte(stopped_r) == b"I"


async def test_per_call_timeout(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    async with aiointerp.InterpreterPool(1, cancel_grace=30) as pool:
        await pool.run_sync(funcs.square, 2)  # a warm worker, module imported
        with pytest.raises(TimeoutError):
            async for _ in pool.map(
                funcs.spin_until_interrupted, [(started_w, stopped_w)], timeout=0.2
            ):
                pass
        assert pool.stats().timed_out == 1
        # on a loaded machine the deadline may pass before the code starts
        if ready_byte(started_r) == b"S":
            assert ready_byte(stopped_r) == b"I"  # interrupted, not left running


async def test_unshareable_item_raises_not_shareable() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        with pytest.raises(aiointerp.NotShareableError):
            async for _ in pool.map(funcs.square, [1, threading.Lock()]):
                pass


async def test_pool_closed_during_map(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    pool = aiointerp.InterpreterPool(1, cancel_grace=30)
    async with pool:
        results = pool.map(funcs.spin_until_interrupted, [(started_w, stopped_w)] * 3)
        async with anyio.create_task_group() as tg:

            async def close_when_running() -> None:
                assert await read_byte(started_r) == b"S"
                await pool.aclose(timeout=0)

            tg.start_soon(close_when_running)
            with pytest.raises(aiointerp.PoolClosedError):
                async for _ in results:
                    pass
    assert ready_byte(stopped_r) == b"I"


async def test_argument_errors() -> None:
    async def coro(x: int) -> int:
        return x

    pool = aiointerp.InterpreterPool(1)
    with pytest.raises(TypeError, match="async function"):
        pool.map(coro, [1])
    with pytest.raises(ValueError, match="max_in_flight"):
        pool.map(funcs.square, [1], max_in_flight=0)
    with pytest.raises(ValueError, match="timeout"):
        pool.map(funcs.square, [1], timeout=-1)
    with pytest.raises(TypeError):
        pool.map(funcs.square, 42)  # type: ignore[arg-type]
    # never started: closing it is harmless
    results = pool.map(funcs.square, [1])
    await results.aclose()  # type: ignore[attr-defined]
    await pool.aclose()


async def test_concurrent_anext_is_refused() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        r, w = os.pipe()
        try:
            results = pool.map(funcs.wait_for_byte, [r])
            async with anyio.create_task_group() as tg:
                tg.start_soon(anext, results)
                await anyio.wait_all_tasks_blocked()
                with pytest.raises(RuntimeError, match="already"):
                    await anext(results)
                os.write(w, b"x")
        finally:
            os.close(r)
            os.close(w)


# -- chunksize: items in batches, results per item ----------------------------------


async def collect(results: AsyncIterator[int], seen: list[int]) -> None:
    """Append every result to ``seen``: what was delivered before an exception."""
    async for result in results:
        seen.append(result)


@pytest.mark.parametrize("chunksize", [2, 3, 64])
async def test_chunked_ordered_results(chunksize: int) -> None:
    async with aiointerp.InterpreterPool(2) as pool:
        results = [
            r async for r in pool.map(batch.times_ten, range(50), chunksize=chunksize)
        ]
        # one call per batch: 50 items in ceil(50 / chunksize) round trips
        assert pool.stats().completed == -(-50 // chunksize)
    assert results == [10 * x for x in range(50)]


async def test_chunked_unordered_results_are_complete() -> None:
    async with aiointerp.InterpreterPool(2) as pool:
        results = [
            r
            async for r in pool.map(
                batch.times_ten, range(50), ordered=False, chunksize=7
            )
        ]
    assert sorted(results) == [10 * x for x in range(50)]


async def test_chunked_async_iterable_source() -> None:
    async def numbers() -> AsyncIterator[int]:
        for x in range(10):
            await anyio.lowlevel.checkpoint()
            yield x

    async with aiointerp.InterpreterPool(2) as pool:
        results = [r async for r in pool.map(batch.times_ten, numbers(), chunksize=4)]
        assert pool.stats().completed == 3  # 4 + 4 + 2 items
    assert results == [10 * x for x in range(10)]


async def test_chunked_empty_source() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        assert [r async for r in pool.map(batch.times_ten, [], chunksize=8)] == []
        assert pool.stats().completed == 0


@pytest.mark.parametrize("workers", [1, 2])
async def test_chunked_exception_is_attributed_to_its_item(workers: int) -> None:
    # one worker: batch [0..3] is done before batch [4..7] fails at 5; one batch of
    # ten: 0..4 succeed in the same round trip as the failure
    for chunksize in (4, 10):
        seen: list[int] = []
        async with aiointerp.InterpreterPool(workers) as pool:
            results = pool.map(batch.fail_at_five, range(10), chunksize=chunksize)
            with pytest.raises(ValueError, match="bad item 5") as info:
                await collect(results, seen)
            stats = pool.stats()
            assert stats.busy == 0
        if workers == 1 or chunksize == 10:
            assert seen == [0, 10, 20, 30, 40]  # everything before the failing item
        else:  # batch [0..3] may be interrupted by the failure of [4..7]
            assert seen in ([0, 10, 20, 30, 40], [])
        error = info.value
        assert error.__notes__ == ["aiointerp: raised by item 5 of the map: 5"]
        cause = error.__cause__
        assert isinstance(cause, aiointerp.RemoteTraceback)
        assert "fail_at_five" in cause.text
        assert "aiointerp/_batch.py" not in cause.text  # the user's frames only


async def test_chunked_unordered_exception_after_completed_results() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        seen: list[int] = []
        results = pool.map(batch.fail_at_five, range(10), ordered=False, chunksize=10)
        with pytest.raises(ValueError, match="bad item 5"):
            await collect(results, seen)
    assert seen == [0, 10, 20, 30, 40]


async def test_chunked_system_exit_is_attributed() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        seen: list[int] = []
        results = pool.map(batch.exit_at_two, range(5), chunksize=5)
        with pytest.raises(aiointerp.RemoteError, match="SystemExit") as info:
            await collect(results, seen)
    assert seen == [0, 1]
    assert info.value.__notes__ == ["aiointerp: raised by item 2 of the map: 2"]


async def test_chunked_unsendable_result_is_attributed() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        seen: list[int] = []
        results = pool.map(batch.unsendable_at_two, range(5), chunksize=5)
        with pytest.raises(aiointerp.NotShareableError, match="lock") as info:
            await collect(results, seen)
    assert seen == [0, 1]
    assert info.value.__notes__ == ["aiointerp: raised by item 2 of the map: 2"]


async def test_results_that_need_cloudpickle_come_back() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        single = await pool.run_sync(batch.local_instance, 7)
        chunked = [
            r.value async for r in pool.map(batch.local_instance, range(4), chunksize=4)
        ]
    assert single.value == 7
    assert chunked == [0, 1, 2, 3]


async def test_chunked_memoryviews() -> None:
    views = [memoryview(bytearray([x])) for x in range(5)]
    async with aiointerp.InterpreterPool(1) as pool:
        # returned views come back as bytes copies, as from a single call
        assert [r async for r in pool.map(batch.as_view, range(3), chunksize=3)] == [
            b"\x00\x00",
            b"\x01\x01",
            b"\x02\x02",
        ]
        # views as items cannot be pickled: they cross as they are
        assert [r async for r in pool.map(batch.first_byte, views, chunksize=2)] == [
            0,
            1,
            2,
            3,
            4,
        ]


async def test_chunked_unshareable_item_raises_not_shareable() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        with pytest.raises(aiointerp.NotShareableError) as info:
            async for _ in pool.map(
                batch.times_ten, [1, threading.Lock()], chunksize=2
            ):
                pass
    assert info.value.__notes__ == [
        "aiointerp: raised by the batch of items 0 to 1 of the map"
    ]


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("max_in_flight", [2, None])
async def test_chunked_backpressure_counts_batches(
    ordered: bool, max_in_flight: int | None
) -> None:
    chunksize, workers, total = 3, 2, 40
    # the default with chunksize > 1: two batches per worker
    batches_ahead = max_in_flight or 2 * workers
    pulled = 0

    def source() -> Iterator[int]:
        nonlocal pulled
        for x in range(total):
            pulled += 1
            yield x

    consumed = 0
    async with aiointerp.InterpreterPool(workers) as pool:
        async for _ in pool.map(
            batch.times_ten,
            source(),
            ordered=ordered,
            max_in_flight=max_in_flight,
            chunksize=chunksize,
        ):
            consumed += 1
            await anyio.wait_all_tasks_blocked()
            # a batch counts until its last result was taken
            batches_done = consumed // chunksize
            assert pulled == min(total, (batches_done + batches_ahead) * chunksize)
    assert consumed == total


async def test_chunked_cancelled_consumer_interrupts_the_batch(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    items = [("square", 2), ("spin", (started_w, stopped_w)), ("square", 3)]
    async with aiointerp.InterpreterPool(1, cancel_grace=30) as pool:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_when_running() -> None:
                    assert await read_byte(started_r) == b"S"
                    scope.cancel()

                tg.start_soon(cancel_when_running)
                async for _ in pool.map(batch.spin_or_square, items, chunksize=3):
                    pytest.fail("the batch cannot return")
        assert scope.cancelled_caught
        assert ready_byte(stopped_r) == b"I"  # stopped before the cancel propagated
        stats = pool.stats()
        assert (stats.busy, stats.cancelled) == (0, 1)


async def test_chunked_aclose_interrupts_the_batch_in_flight(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    items = [
        ("square", 2),
        ("square", 3),
        ("spin", (started_w, stopped_w)),
        ("square", 4),
    ]
    async with aiointerp.InterpreterPool(2, cancel_grace=30) as pool:
        async with aclosing(
            pool.map(batch.spin_or_square, items, chunksize=2)
        ) as results:
            async for first in results:
                assert first == 4
                assert await read_byte(started_r) == b"S"
                break
        # aclose() returned: the spinning batch has stopped
        assert ready_byte(stopped_r) == b"I"
        assert pool.stats().busy == 0
        with pytest.raises(StopAsyncIteration):
            await anext(results)


async def test_chunked_abandoned_iterator_interrupts_the_batch(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    items = [("square", 2), ("square", 3), ("spin", (started_w, stopped_w))]
    async with aiointerp.InterpreterPool(2, cancel_grace=30) as pool:
        async for first in pool.map(batch.spin_or_square, items, chunksize=2):
            assert first == 4
            assert await read_byte(started_r) == b"S"
            break  # no aclose(): the dropped iterator cancels in the background
        gc.collect()
        assert await read_byte(stopped_r) == b"I"


async def test_chunked_timeout_applies_per_batch(pipe: MakePipe) -> None:
    started_r, started_w = pipe()
    stopped_r, stopped_w = pipe()
    items = [("square", 2), ("spin", (started_w, stopped_w))]
    async with aiointerp.InterpreterPool(1, cancel_grace=30) as pool:
        await pool.run_sync(batch.times_ten, 1)  # a warm worker, module imported
        with pytest.raises(TimeoutError) as info:
            async for _ in pool.map(
                batch.spin_or_square, items, chunksize=2, timeout=0.2
            ):
                pass
        assert info.value.__notes__ == [
            "aiointerp: raised by the batch of items 0 to 1 of the map"
        ]
        assert pool.stats().timed_out == 1
        # on a loaded machine the deadline may pass before the code starts
        if ready_byte(started_r) == b"S":
            assert ready_byte(stopped_r) == b"I"  # interrupted, not left running


async def test_single_item_exception_names_its_item() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        with pytest.raises(ValueError, match="bad item 5") as info:
            async for _ in pool.map(batch.fail_at_five, range(10), max_in_flight=1):
                pass
    assert info.value.__notes__ == ["aiointerp: raised by item 5 of the map: 5"]


@pytest.mark.parametrize(
    ("chunksize", "error"),
    [
        (0, ValueError),
        (-3, ValueError),
        (1.5, TypeError),
        ("8", TypeError),
        (True, TypeError),
    ],
)
async def test_invalid_chunksize_raises_at_once(chunksize: object, error: type) -> None:
    pool = aiointerp.InterpreterPool(1)
    with pytest.raises(error, match="chunksize"):
        pool.map(batch.times_ten, [1], chunksize=chunksize)  # type: ignore[arg-type]
    await pool.aclose()
