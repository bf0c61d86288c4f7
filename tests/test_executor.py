"""InterpreterExecutor: a concurrent.futures.Executor backed by the interpreter pool.

These tests are synchronous (the executor is for sync code); run_in_executor is
tested on an asyncio loop, since asyncio is the only loop with that API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from pathlib import Path

import _funcs_integrations as funcs
import pytest

import aiointerp
from aiointerp import _interp


@pytest.fixture
def pipes() -> Iterator[list[tuple[int, int]]]:
    made = [os.pipe() for _ in range(3)]
    yield made
    for r, w in made:
        os.close(r)
        os.close(w)


def no_byte(fd: int) -> bool:
    os.set_blocking(fd, False)
    try:
        os.read(fd, 1)
    except BlockingIOError:
        return True
    return False


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
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
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
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "49\n64\n"
    assert done.stderr == ""
