"""InterpreterPool.map: results, backpressure, errors, early exit and cancellation."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing

import _funcs_integrations as funcs
import anyio
import pytest

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


def ready_byte(fd: int) -> bytes | None:
    """The byte waiting on ``fd`` now, or None (never blocks)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1)
    except BlockingIOError:
        return None


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
