"""InterpreterExecutor: a concurrent.futures.Executor backed by the interpreter pool.

These tests are synchronous (the executor is for sync code); run_in_executor is
tested on asyncio loops (asyncio's and uvloop's), the only loops with that API.
``kind="process"`` executors hand-shake through FIFOs (a worker process inherits
none of the test's pipes), as tests/kinds/test_process_workers.py does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import _funcs_batch as fb
import _funcs_integrations as funcs
import _funcs_process as fp
import pytest
from _handshake import ready_byte, text
from conftest import child_env

import aiointerp
from aiointerp import _executor_futures
from aiointerp._wire import _interp

T = TypeVar("T")


@pytest.fixture
def pipes() -> Iterator[list[tuple[int, int]]]:
    made = [os.pipe() for _ in range(3)]
    yield made
    for r, w in made:
        os.close(r)
        os.close(w)


def no_byte(fd: int) -> bool:
    return ready_byte(fd) is None


def test_submit_and_result() -> None:
    with aiointerp.InterpreterExecutor(2) as executor:
        assert executor.max_workers == 2
        futures = [executor.submit(funcs.square, x) for x in range(10)]
        assert [f.result(timeout=60) for f in futures] == [x * x for x in range(10)]
        assert executor.submit(funcs.add.__wrapped__, 1, b=2, scale=3).result() == 9  # type: ignore[attr-defined]
        assert executor.submit(funcs.plain_interp_id).result() != _interp.current_id()


def test_exception_keeps_type_and_remote_traceback() -> None:
    with aiointerp.InterpreterExecutor(1) as executor:
        future = executor.submit(funcs.fail_on, 3, 3)
        with pytest.raises(ValueError, match="bad item 3") as info:
            future.result()
        assert isinstance(info.value.__cause__, aiointerp.RemoteTraceback)
        assert "fail_on" in info.value.__cause__.text
        unshareable = executor.submit(funcs.square, threading.Lock())  # type: ignore[arg-type]
        assert isinstance(unshareable.exception(), aiointerp.NotShareableError)


def test_map_accepts_timeout_and_chunksize() -> None:
    with aiointerp.InterpreterExecutor(2) as executor:
        results = executor.map(funcs.square, range(8), timeout=60, chunksize=3)
        assert list(results) == [x * x for x in range(8)]
        assert list(executor.map(funcs.fail_on, [1, 2], [0, 0])) == [1, 2]


def test_submit_after_shutdown_raises() -> None:
    executor = aiointerp.InterpreterExecutor(1)
    executor.shutdown()  # never started: nothing to stop
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(funcs.square, 2)
    with aiointerp.InterpreterExecutor(1) as executor:
        assert executor.submit(funcs.square, 2).result() == 4
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(funcs.square, 2)
    executor.shutdown()  # twice is harmless


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        aiointerp.InterpreterExecutor(0)
    with pytest.raises(ValueError, match="cancel_grace"):
        aiointerp.InterpreterExecutor(1, cancel_grace=-1)
    with pytest.raises(ValueError, match="kind must be"):
        aiointerp.InterpreterExecutor(1, kind="thread")
    assert aiointerp.InterpreterExecutor.__module__ == "aiointerp"


def test_cancel_pending_call_prevents_it(pipes: list[tuple[int, int]]) -> None:
    (out_r, out_w), (in_r, in_w), _ = pipes
    with aiointerp.InterpreterExecutor(1) as executor:
        first = executor.submit(funcs.handshake_square, (1, out_w, in_r))
        second = executor.submit(funcs.handshake_square, (2, out_w, in_r))
        assert os.read(out_r, 1) == b"\x01"  # the first one runs
        assert first.running()
        assert not first.cancel()  # running: the standard says no
        assert second.cancel()
        assert second.cancelled()
        # wait() learns about the cancelled one at once, while the first still runs
        done, not_done = concurrent.futures.wait(
            [first, second], timeout=60, return_when=concurrent.futures.FIRST_COMPLETED
        )
        assert done == {second}
        assert not_done == {first}
        os.write(in_w, b"g")
        assert first.result() == 1
    assert no_byte(out_r)  # the second never started


def test_interrupt_running_call(pipes: list[tuple[int, int]]) -> None:
    (started_r, started_w), (stopped_r, stopped_w), _ = pipes
    with aiointerp.InterpreterExecutor(1, cancel_grace=30) as executor:
        future = executor.submit(funcs.spin_until_interrupted, (started_w, stopped_w))
        assert os.read(started_r, 1) == b"S"
        assert executor.interrupt(future)
        assert isinstance(future.exception(timeout=60), CancelledError)
        assert not future.cancelled()  # it did run
        assert os.read(stopped_r, 1) == b"I"
        assert not executor.interrupt(future)  # finished
        # the pool goes on with a fresh interpreter
        assert executor.submit(funcs.square, 5).result() == 25


def test_interrupt_pending_call_cancels_it(pipes: list[tuple[int, int]]) -> None:
    (out_r, out_w), (in_r, in_w), _ = pipes
    with aiointerp.InterpreterExecutor(1) as executor:
        first = executor.submit(funcs.handshake_square, (1, out_w, in_r))
        second = executor.submit(funcs.handshake_square, (2, out_w, in_r))
        assert os.read(out_r, 1) == b"\x01"
        assert executor.interrupt(second)
        assert second.cancelled()
        os.write(in_w, b"g")
        assert first.result() == 1
        assert not executor.interrupt(Future())  # not one of ours


def test_shutdown_cancel_futures(pipes: list[tuple[int, int]]) -> None:
    (out_r, out_w), (in_r, in_w), _ = pipes
    executor = aiointerp.InterpreterExecutor(1)
    first = executor.submit(funcs.handshake_square, (1, out_w, in_r))
    rest = [executor.submit(funcs.handshake_square, (x, out_w, in_r)) for x in (2, 3)]
    assert os.read(out_r, 1) == b"\x01"
    executor.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in rest)
    os.write(in_w, b"g")
    assert first.result(timeout=60) == 1  # running calls finish
    executor.shutdown(wait=True)
    assert no_byte(out_r)


def test_shutdown_waits_for_submitted_calls(pipes: list[tuple[int, int]]) -> None:
    (out_r, out_w), (in_r, in_w), _ = pipes
    executor = aiointerp.InterpreterExecutor(1)
    futures = [
        executor.submit(funcs.handshake_square, (x, out_w, in_r)) for x in (1, 2)
    ]
    os.write(in_w, b"gg")
    executor.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == [1, 4]
    assert os.read(out_r, 2) == b"\x01\x02"


def test_submit_from_a_done_callback() -> None:
    chained: Future[Future[int]] = Future()
    with aiointerp.InterpreterExecutor(1) as executor:

        def then(future: Future[int]) -> None:
            # runs on the executor's event-loop thread: submit must not block there
            chained.set_result(executor.submit(funcs.square, future.result()))

        executor.submit(funcs.square, 3).add_done_callback(then)
        assert chained.result(timeout=60).result(timeout=60) == 81


def test_as_completed() -> None:
    with aiointerp.InterpreterExecutor(2) as executor:
        futures = [executor.submit(funcs.square, x) for x in range(6)]
        results = {f.result() for f in concurrent.futures.as_completed(futures, 60)}
    assert results == {x * x for x in range(6)}


def test_initializer() -> None:
    r, w = os.pipe()
    try:
        with aiointerp.InterpreterExecutor(
            1, initializer=funcs.signal, initargs=(w, b"i")
        ) as executor:
            assert executor.submit(funcs.square, 2).result() == 4
        assert os.read(r, 1) == b"i"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("kind", ["interpreter", "process"])
def test_initializer_that_raises_breaks_the_executor_saying_why(kind: str) -> None:
    with aiointerp.InterpreterExecutor(
        2, initializer=fp.fail, initargs=("no config",), kind=kind
    ) as executor:
        for _ in range(2):  # broken for good, and says why each time
            with pytest.raises(concurrent.futures.BrokenExecutor) as info:
                executor.submit(funcs.square, 2)
            assert str(info.value).startswith(
                "the executor's workers could not start: the pool's initializer "
                "raised ValueError: no config; this executor is broken"
            )
            cause = info.value.__cause__
            assert type(cause) is ValueError  # the initializer's own exception
            assert str(cause) == "no config"
            assert "in fail" in str(cause.__cause__)  # with its remote traceback
    assert not any(t.name == "aiointerp-executor" for t in threading.enumerate())


def test_run_in_executor() -> None:
    async def main(executor: aiointerp.InterpreterExecutor) -> list[int]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(
                *(loop.run_in_executor(executor, funcs.square, x) for x in range(4))
            )
        )

    with aiointerp.InterpreterExecutor(2) as executor:
        assert asyncio.run(main(executor), debug=True) == [0, 1, 4, 9]


def test_thread_is_gone_after_shutdown() -> None:
    executor = aiointerp.InterpreterExecutor(1)
    assert executor.submit(funcs.square, 2).result() == 4
    assert any(t.name == "aiointerp-executor" for t in threading.enumerate())
    executor.shutdown()
    assert not any(t.name == "aiointerp-executor" for t in threading.enumerate())


def test_interpreter_exit_shuts_down_a_forgotten_executor() -> None:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
        "import _funcs_integrations as funcs\n"
        "import aiointerp\n"
        "executor = aiointerp.InterpreterExecutor(1)\n"
        "print(executor.submit(funcs.square, 7).result(), flush=True)\n"
        "import os\n"
        "out_r, out_w = os.pipe()\n"
        "in_r, in_w = os.pipe()\n"
        "future = executor.submit(funcs.handshake_square, (8, out_w, in_r))\n"
        "future.add_done_callback(lambda f: print(f.result(), flush=True))\n"
        "assert os.read(out_r, 1) == bytes([8])  # the call runs\n"
        "import threading\n"
        "# runs first at exit (LIFO), while the call is still waiting for this byte\n"
        "threading._register_atexit(lambda: os.write(in_w, b'g'))\n"
        "# no shutdown(): interpreter exit lets the call finish, then stops\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "49\n64\n"
    assert done.stderr == ""


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("fds", id="out-of-fds"),
        pytest.param("threads", id="thread-start-fails"),
    ],
)
def test_loop_thread_that_cannot_start_breaks_the_executor(kind: str) -> None:
    # real triggers in a child process: no file descriptor left for the thread's event
    # loop (submit used to deadlock: it joined the thread holding the lock the thread
    # needed), or Thread.start() raising "can't start new thread"
    script = Path(__file__).parents[1] / "scripts" / "executor_cannot_start.py"
    done = subprocess.run(
        [sys.executable, str(script), kind],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,  # hang guard: the deadlock
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cause = "OSError" if kind == "fds" else "RuntimeError"
    assert done.stdout.splitlines() == [
        f"first BrokenExecutor from {cause}",
        f"again BrokenExecutor from {cause}",  # broken for good, and says why
        "threads []",
        "new 3",
    ]
    assert done.stderr == ""  # no traceback from the failed thread


def test_thread_start_failure_is_broken_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the bookkeeping of the real test above, in this process
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    executor = aiointerp.InterpreterExecutor(1)
    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(concurrent.futures.BrokenExecutor, match="broken") as info:
            executor.submit(funcs.square, 2)
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(concurrent.futures.BrokenExecutor):
        executor.submit(funcs.square, 2)  # stays broken once threads start again
    executor.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(funcs.square, 2)


# -- interrupt_on_cancel ---------------------------------------------------------------


def _loop_factories() -> list[Any]:
    factories = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        pass
    else:
        factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


def run_on(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    main: Callable[[], Coroutine[Any, Any, T]],
) -> T:
    with asyncio.Runner(debug=True, loop_factory=loop_factory) as runner:
        return runner.run(main())


async def byte_from(fd: int) -> bytes:
    """Wait on the running asyncio loop (not blocking it) for one byte on ``fd``."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, readable.set_result, None)
    try:
        async with asyncio.timeout(60):  # hang guard
            await readable
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 1)


def test_default_cancel_of_a_running_call_is_refused(
    pipes: list[tuple[int, int]],
) -> None:
    (started_r, started_w), (stopped_r, stopped_w), _ = pipes
    with aiointerp.InterpreterExecutor(1, cancel_grace=30) as executor:
        future = executor.submit(funcs.spin_until_interrupted, (started_w, stopped_w))
        assert type(future) is Future  # the standard future, untouched
        assert os.read(started_r, 1) == b"S"
        assert not future.cancel()  # the standard: a running call is not cancelled
        assert future.running()
        assert not future.cancelled()
        assert ready_byte(stopped_r) is None  # still spinning
        assert executor.interrupt(future)  # the way to stop it without the option
        assert isinstance(future.exception(timeout=60), CancelledError)
        assert os.read(stopped_r, 1) == b"I"


@pytest.mark.parametrize("loop_factory", _loop_factories())
def test_wait_for_interrupts_run_in_executor(
    pipes: list[tuple[int, int]], loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    (started_r, started_w), (stopped_r, stopped_w), _ = pipes

    async def main(executor: aiointerp.InterpreterExecutor) -> int:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(executor, funcs.square, 2) == 4  # warm
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                loop.run_in_executor(
                    executor, funcs.spin_until_interrupted, (started_w, stopped_w)
                ),
                0.2,
            )
        # cancel() did not block the loop; the code stops soon after
        if ready_byte(started_r) == b"S":  # a loaded machine may not have started it
            assert await byte_from(stopped_r) == b"I"
        # the only slot is free again (a fresh interpreter replaces the interrupted)
        return await loop.run_in_executor(executor, funcs.square, 5)

    with aiointerp.InterpreterExecutor(
        1, cancel_grace=30, interrupt_on_cancel=True
    ) as executor:
        assert run_on(loop_factory, lambda: main(executor)) == 25


@pytest.mark.parametrize("loop_factory", _loop_factories())
def test_cancelled_task_interrupts_run_in_executor(
    pipes: list[tuple[int, int]], loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    (started_r, started_w), (stopped_r, stopped_w), _ = pipes

    async def main(executor: aiointerp.InterpreterExecutor) -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            loop.run_in_executor(
                executor, funcs.spin_until_interrupted, (started_w, stopped_w)
            )
        )
        assert await byte_from(started_r) == b"S"  # it runs
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await byte_from(stopped_r) == b"I"
        return await loop.run_in_executor(executor, funcs.square, 6)

    with aiointerp.InterpreterExecutor(
        1, cancel_grace=30, interrupt_on_cancel=True
    ) as executor:
        assert run_on(loop_factory, lambda: main(executor)) == 36


def test_cancel_running_call_with_interrupt_on_cancel(
    pipes: list[tuple[int, int]],
) -> None:
    (started_r, started_w), (stopped_r, stopped_w), (seen_r, seen_w) = pipes
    with aiointerp.InterpreterExecutor(
        1, cancel_grace=30, interrupt_on_cancel=True
    ) as executor:
        future = executor.submit(funcs.spin_until_interrupted, (started_w, stopped_w))
        calls: list[bytes | None] = []

        def on_done(done: Future[None]) -> None:
            # the cleanup byte is there when the callback runs
            calls.append(ready_byte(stopped_r))
            os.write(seen_w, b"c")

        future.add_done_callback(on_done)
        assert os.read(started_r, 1) == b"S"
        assert future.running()
        assert future.cancel()
        assert future.cancelled()
        assert future.done()
        assert not future.running()
        with pytest.raises(CancelledError):
            future.result(timeout=60)  # waits until the code stopped
        assert os.read(seen_r, 1) == b"c"
        assert calls == [b"I"]  # the finally ran before anyone was told
        assert future.cancel()  # again: still cancelled
        with pytest.raises(CancelledError):
            future.exception(timeout=0)
        done, not_done = concurrent.futures.wait([future], timeout=60)
        assert (done, not_done) == ({future}, set())
        assert list(concurrent.futures.as_completed([future], timeout=60)) == [future]
        late: list[Future[None]] = []
        future.add_done_callback(late.append)  # runs at once, as for any done future
        assert late == [future]
        assert executor.submit(funcs.square, 5).result(timeout=60) == 25
        assert calls == [b"I"]  # each callback once


def test_wait_sees_the_cancelled_call_once_it_stopped(
    pipes: list[tuple[int, int]],
) -> None:
    (started_r, started_w), (stopped_r, stopped_w), _ = pipes
    with aiointerp.InterpreterExecutor(
        2, cancel_grace=30, interrupt_on_cancel=True
    ) as executor:
        spinning = executor.submit(funcs.spin_until_interrupted, (started_w, stopped_w))
        assert os.read(started_r, 1) == b"S"
        waiting: Future[set[Future[Any]]] = Future()

        def wait_in_a_thread() -> None:
            done, _ = concurrent.futures.wait(
                [spinning], timeout=60, return_when=concurrent.futures.FIRST_COMPLETED
            )
            waiting.set_result(done)

        thread = threading.Thread(target=wait_in_a_thread)
        thread.start()  # wait() is waiting on the running future
        assert spinning.cancel()
        assert waiting.result(timeout=60) == {spinning}
        thread.join()
        assert ready_byte(stopped_r) == b"I"


def test_cancel_uninterruptible_call_gives_up_after_cancel_grace(
    pipes: list[tuple[int, int]],
) -> None:
    (said_r, said_w), (go_r, go_w), _ = pipes
    with aiointerp.InterpreterExecutor(
        1, cancel_grace=0.2, interrupt_on_cancel=True
    ) as executor:
        future = executor.submit(fb.block_on, (said_w, go_r))
        assert os.read(said_r, 1) == b"B"  # blocked in os.read: no interrupt lands
        assert future.cancel()
        with pytest.raises(CancelledError):
            future.result(timeout=60)  # released after cancel_grace, code still blocked
        os.write(go_w, b"g")  # the abandoned call returns; its interpreter is replaced
        assert executor.submit(funcs.square, 3).result(timeout=60) == 9


def test_cancel_queued_call_with_interrupt_on_cancel(
    pipes: list[tuple[int, int]],
) -> None:
    (out_r, out_w), (in_r, in_w), _ = pipes
    with aiointerp.InterpreterExecutor(1, interrupt_on_cancel=True) as executor:
        first = executor.submit(funcs.handshake_square, (1, out_w, in_r))
        second = executor.submit(funcs.handshake_square, (2, out_w, in_r))
        assert os.read(out_r, 1) == b"\x01"
        assert second.cancel()
        assert second.cancelled()
        done, not_done = concurrent.futures.wait(
            [first, second], timeout=60, return_when=concurrent.futures.FIRST_COMPLETED
        )
        assert (done, not_done) == ({second}, {first})
        os.write(in_w, b"g")
        assert first.result(timeout=60) == 1
        assert not first.cancel()  # finished
    assert no_byte(out_r)  # the second never started


def test_shutdown_cancel_futures_spares_running_calls(
    pipes: list[tuple[int, int]],
) -> None:
    (out_r, out_w), (in_r, in_w), _ = pipes
    executor = aiointerp.InterpreterExecutor(1, interrupt_on_cancel=True)
    first = executor.submit(funcs.handshake_square, (1, out_w, in_r))
    rest = [executor.submit(funcs.handshake_square, (x, out_w, in_r)) for x in (2, 3)]
    assert os.read(out_r, 1) == b"\x01"
    executor.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in rest)
    assert first.running()  # the standard: only calls not started are cancelled
    os.write(in_w, b"g")
    assert first.result(timeout=60) == 1
    executor.shutdown(wait=True)
    assert no_byte(out_r)


def test_interrupt_with_interrupt_on_cancel_cancels(
    pipes: list[tuple[int, int]],
) -> None:
    (started_r, started_w), (stopped_r, stopped_w), _ = pipes
    with aiointerp.InterpreterExecutor(
        1, cancel_grace=30, interrupt_on_cancel=True
    ) as executor:
        future = executor.submit(funcs.spin_until_interrupted, (started_w, stopped_w))
        assert os.read(started_r, 1) == b"S"
        assert executor.interrupt(future)
        assert future.cancelled()
        with pytest.raises(CancelledError):
            future.result(timeout=60)
        assert ready_byte(stopped_r) == b"I"
        assert not executor.interrupt(future)


@pytest.mark.parametrize("interrupt_on_cancel", [False, True])
def test_standard_executor_behaviour(interrupt_on_cancel: bool) -> None:
    """What CPython's generic executor tests check, with the option off and on."""
    with aiointerp.InterpreterExecutor(
        2, interrupt_on_cancel=interrupt_on_cancel
    ) as executor:
        future = executor.submit(pow, 2, 8)
        assert future.result(timeout=60) == 256
        assert future.done()
        assert not future.cancelled()
        assert not future.cancel()  # finished
        assert future.exception() is None
        # keyword arguments
        assert executor.submit(funcs.add.__wrapped__, 1, b=2).result() == 3  # type: ignore[attr-defined]
        # map: order, several iterables, timeout counted from the call
        assert list(executor.map(pow, range(10), range(10), timeout=60)) == [
            pow(x, x) for x in range(10)
        ]
        # an exception is raised when the iterator reaches it
        results = executor.map(funcs.fail_on, [1, 2, 3], [2, 2, 2])
        assert next(results) == 1
        with pytest.raises(ValueError, match="bad item 2"):
            next(results)
        # done-callbacks run once, also when added after the fact
        seen: list[int] = []
        done = executor.submit(funcs.square, 4)
        done.add_done_callback(lambda f: seen.append(f.result()))
        concurrent.futures.wait([done], timeout=60)
        done.add_done_callback(lambda f: seen.append(f.result()))
        assert seen == [16, 16]
        # wait() and as_completed()
        futures = [executor.submit(funcs.square, x) for x in range(8)]
        finished, pending = concurrent.futures.wait(futures, timeout=60)
        assert (len(finished), pending) == (8, set())
        completed = concurrent.futures.as_completed(futures, timeout=60)
        assert {f.result() for f in completed} == {x * x for x in range(8)}
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(pow, 2, 5)


def test_settle_after_cancel_drops_the_result() -> None:
    """Bookkeeping: cancel() racing with the result of the call (no interpreter)."""
    future: _executor_futures.InterruptibleFuture[int] = (
        _executor_futures.InterruptibleFuture()
    )
    posted: list[str] = []
    future._stop = lambda: posted.append("interrupt")
    calls: list[Future[int]] = []
    future.add_done_callback(calls.append)
    assert future.set_running_or_notify_cancel()
    assert future.cancel()
    assert posted == ["interrupt"]
    assert calls == []  # not before the call stopped
    with pytest.raises(TimeoutError):
        future.result(timeout=0)  # cancelled, not stopped yet
    _executor_futures.settle(future, 42)  # the result arrives after cancel(): dropped
    assert calls == [future]
    assert future.cancelled()
    with pytest.raises(CancelledError):
        future.result(timeout=0)


def test_settle_of_a_standard_future_set_twice_raises() -> None:
    """Bookkeeping: a standard future cannot be cancelled while it runs, so an outcome
    set twice is a bug of ours, and not hidden."""
    future: Future[int] = Future()
    assert future.set_running_or_notify_cancel()
    _executor_futures.settle(future, 1)
    with pytest.raises(concurrent.futures.InvalidStateError):
        _executor_futures.settle(future, 2)


def test_a_loop_that_dies_fails_its_calls(
    pipes: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # fault injection: an action of the loop's main task raises (a bug of ours).
    # The running call is interrupted, the one not spawned yet fails too, and the
    # error reaches threading.excepthook
    (started_r, started_w), (stopped_r, stopped_w), _ = pipes
    died: list[BaseException | None] = []
    monkeypatch.setattr(
        threading, "excepthook", lambda args: died.append(args.exc_value)
    )
    executor = aiointerp.InterpreterExecutor(1, cancel_grace=30)
    running = executor.submit(funcs.spin_until_interrupted, (started_w, stopped_w))
    assert os.read(started_r, 1) == b"S"
    engine = executor._engine

    def bug() -> None:
        raise RuntimeError("a bug in an action of the loop")

    with engine.lock:  # both reach the inbox before the loop wakes: bug first
        engine.post(bug)
        queued = executor.submit(funcs.square, 3)
    with pytest.raises(concurrent.futures.BrokenExecutor, match="event loop ended"):
        running.result(timeout=60)
    assert os.read(stopped_r, 1) == b"I"
    with pytest.raises(concurrent.futures.BrokenExecutor, match="event loop ended"):
        queued.result(timeout=60)
    executor.shutdown(wait=True)
    assert len(died) == 1
    assert "a bug in an action of the loop" in repr(died[0]) or any(
        "a bug in an action" in str(e) for e in getattr(died[0], "exceptions", ())
    )


# -- map with chunksize ----------------------------------------------------------------


def test_map_chunksize_results_per_item() -> None:
    with aiointerp.InterpreterExecutor(2) as executor:
        results = executor.map(fb.add, range(20), range(100, 117), chunksize=4)
        assert list(results) == [x + 100 + x for x in range(17)]  # zip: the shortest
        assert list(executor.map(fb.times_ten, [], chunksize=4)) == []
        assert list(executor.map(fb.times_ten, range(5), chunksize=100)) == [
            0,
            10,
            20,
            30,
            40,
        ]


def test_map_chunksize_exception_at_its_item() -> None:
    with aiointerp.InterpreterExecutor(1) as executor:
        results = executor.map(fb.fail_at_five, range(10), chunksize=4, timeout=60)
        assert [next(results) for _ in range(5)] == [0, 10, 20, 30, 40]
        with pytest.raises(ValueError, match="bad item 5") as info:
            next(results)
        assert info.value.__notes__ == ["aiointerp: raised by item 5 of the map: (5,)"]
        assert isinstance(info.value.__cause__, aiointerp.RemoteTraceback)
        with pytest.raises(StopIteration):
            next(results)


def test_map_chunksize_close_interrupts_the_batch(
    pipes: list[tuple[int, int]],
) -> None:
    (started_r, started_w), (stopped_r, stopped_w), _ = pipes
    items = [
        ("square", 2),
        ("square", 3),
        ("spin", (started_w, stopped_w)),
        ("square", 4),
    ]
    with aiointerp.InterpreterExecutor(
        2, cancel_grace=30, interrupt_on_cancel=True
    ) as executor:
        results = executor.map(fb.spin_or_square, items, chunksize=2)
        assert next(results) == 4
        assert os.read(started_r, 1) == b"S"
        results.close()  # cancels the batches left: the running one is interrupted
        assert os.read(stopped_r, 1) == b"I"


def test_map_chunksize_timeout_interrupts_the_batch(
    pipes: list[tuple[int, int]],
) -> None:
    (started_r, started_w), (stopped_r, stopped_w), _ = pipes
    items = [("square", 2), ("spin", (started_w, stopped_w))]
    with aiointerp.InterpreterExecutor(
        1, cancel_grace=30, interrupt_on_cancel=True
    ) as executor:
        assert executor.submit(fb.times_ten, 1).result(timeout=60) == 10  # warm
        results = executor.map(fb.spin_or_square, items, chunksize=2, timeout=0.2)
        with pytest.raises(TimeoutError):
            next(results)
        if ready_byte(started_r) == b"S":  # a loaded machine may not have started it
            assert os.read(stopped_r, 1) == b"I"


@pytest.mark.parametrize(
    ("chunksize", "error"), [(0, ValueError), (-1, ValueError), (2.5, TypeError)]
)
def test_map_invalid_chunksize_raises_at_once(chunksize: Any, error: type) -> None:
    executor = aiointerp.InterpreterExecutor(1)
    with pytest.raises(error, match="chunksize"):
        executor.map(fb.times_ten, [1], chunksize=chunksize)
    executor.shutdown()


def test_map_chunksize_with_buffersize() -> None:
    with aiointerp.InterpreterExecutor(2) as executor:
        if sys.version_info < (3, 14):  # as the standard Executor.map of 3.13
            with pytest.raises(TypeError, match="buffersize"):
                executor.map(fb.times_ten, range(30), chunksize=4, buffersize=2)  # type: ignore[call-arg]
            return
        results = executor.map(fb.times_ten, range(30), chunksize=4, buffersize=2)
        assert list(results) == [10 * x for x in range(30)]


# -- kind="process" --------------------------------------------------------------------


@contextmanager
def fifo(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A FIFO for handshakes: its path for the worker, a non-blocking fd for the test."""
    path = tmp_path / "handshake"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # never at EOF: we hold a writer
    try:
        yield str(path), fd
    finally:
        os.close(fd)


async def pid_from(fd: int) -> int:
    """Wait on the running asyncio loop for the pid a worker wrote on the FIFO."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, readable.set_result, None)
    try:
        async with asyncio.timeout(60):  # hang guard
            await readable
    finally:
        loop.remove_reader(fd)
    return int.from_bytes(os.read(fd, 8), "little")


def pid_written(fd: int) -> int:
    """Block (hang guard: 60 s) until a worker wrote its pid on the FIFO."""
    import select

    assert select.select([fd], [], [], 60)[0], "no handshake"
    return int.from_bytes(os.read(fd, 8), "little")


@pytest.mark.parametrize("loop_factory", _loop_factories())
def test_run_in_executor_in_processes(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main(executor: aiointerp.InterpreterExecutor) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        squares = await asyncio.gather(
            *(loop.run_in_executor(executor, funcs.square, x) for x in range(4))
        )
        pids = await asyncio.gather(
            *(loop.run_in_executor(executor, fp.pid) for _ in range(4))
        )
        return squares, pids

    with aiointerp.InterpreterExecutor(2, kind="process") as executor:
        squares, pids = run_on(loop_factory, lambda: main(executor))
    assert squares == [0, 1, 4, 9]
    assert os.getpid() not in pids
    assert 1 <= len(set(pids)) <= 2  # warm processes, reused


@pytest.mark.parametrize("loop_factory", _loop_factories())
def test_cancelled_run_in_executor_interrupts_the_process(
    tmp_path: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    path = tmp_path / "finally"

    async def main(
        executor: aiointerp.InterpreterExecutor, name: str, fd: int
    ) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            loop.run_in_executor(executor, fp.spin, name, str(path))
        )
        spun = await pid_from(fd)  # it runs
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the only slot: free once the code stopped, in a new process
        return spun, await loop.run_in_executor(executor, fp.pid)

    with (
        aiointerp.InterpreterExecutor(
            1, cancel_grace=30, interrupt_on_cancel=True, kind="process"
        ) as executor,
        fifo(tmp_path) as (name, fd),
    ):
        spun, after = run_on(loop_factory, lambda: main(executor, name, fd))
    assert spun != after
    assert text(path) == "finally\n"  # interrupted in place: its cleanup ran


def test_process_that_ignores_the_cancel_is_killed_after_cancel_grace(
    tmp_path: Path,
) -> None:
    with (
        aiointerp.InterpreterExecutor(
            1, cancel_grace=0.2, interrupt_on_cancel=True, kind="process"
        ) as executor,
        fifo(tmp_path) as (name, fd),
    ):
        future = executor.submit(fp.sleep_forever, name)
        stuck = pid_written(fd)
        assert future.cancel()
        with pytest.raises(CancelledError):
            future.result(timeout=60)  # released after cancel_grace: it was killed
        # the slot is free at once (an interpreter would hold it until it returned)
        assert executor.submit(fp.pid).result(timeout=60) != stuck
