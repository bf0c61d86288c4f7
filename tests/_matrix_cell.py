"""One cell of the cleanup matrix: interrupt one code shape on one event loop.

Run by tests/inside/test_cleanup_matrix.py in a fresh Python per cell::

    python tests/_matrix_cell.py SHAPE BACKEND INTERRUPTS [KIND]

and prints one JSON object: ``interrupts`` (calls interrupted after their
handshake), ``calls``, ``by_source`` and ``failures`` (what each failing call wrote).
A process per cell, because every interrupted interpreter is retired and CPython 3.13
leaks ~4 MiB per interpreter it destroys (3.13.0 and 3.13.18 alike): the ~3,000 of a
whole matrix in one process would take 12 GiB. The cells of ``kind="process"`` leak
nothing in the host: the test awaits :func:`run_cell` in its own process, and the
handshake goes through a FIFO (tests/_funcs_matrix.py), which a worker process can
open by its path.

Each call is cancelled, in turn, by an anyio cancel scope, the event loop's own
cancellation (``Task.cancel()`` / a trio cancel scope), a deadline, the call's
``timeout=`` and ``aclose()`` of its pool. What ran is read from the file the shape
writes, never inferred from timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import _funcs_matrix
import anyio
import sniffio
from benchmarks import _shapes as shapes

from aiointerp import InterpreterPool, PoolClosedError
from aiointerp._wire import _interp

SOURCES = ("anyio_scope", "native", "deadline", "timeout", "aclose")
#: hang guard for one call
HANG = 30.0
#: ``timeout=`` of the calls cancelled by their own timeout (a call starts in ~1 ms)
CALL_TIMEOUT = 0.05
BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {"debug": True}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


async def _wait_handshake(read_fd: int) -> None:
    await anyio.wait_readable(read_fd)
    assert len(os.read(read_fd, 8)) == 8


def _took_handshake(read_fd: int) -> bool:
    """Did the call write its handshake? Never blocks; consumes it."""
    if not select.select([read_fd], [], [], 0)[0]:
        return False
    assert len(os.read(read_fd, 8)) == 8
    return True


async def _cancel_after_handshake(
    call: Callable[[], Awaitable[object]], read_fd: int, source: str
) -> None:
    """Run *call*; once its code runs, cancel it the way *source* says."""
    if source == "native" and sniffio.current_async_library() == "asyncio":
        task = asyncio.get_running_loop().create_task(call())  # type: ignore[arg-type]
        await _wait_handshake(read_fd)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return
        raise AssertionError("the task was not cancelled")
    if source == "native":  # trio's own cancel scope and nursery
        import trio

        with trio.CancelScope() as trio_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(call)
                await _wait_handshake(read_fd)
                trio_scope.cancel()
        assert trio_scope.cancelled_caught
        return
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await _wait_handshake(read_fd)
            if source == "deadline":
                scope.deadline = anyio.current_time()
            else:
                scope.cancel()
    assert scope.cancelled_caught


async def _interrupt_once(
    pool: InterpreterPool,
    kind: str,
    name: str,
    source: str,
    path: Path,
    handshake: tuple[int, int | str],
) -> bool:
    """Interrupt one call of shape *name*; return whether it ran past its handshake.

    *handshake*: the fd the cell reads, and what the worker writes to (the pipe's
    write end for interpreters, the FIFO's path for processes).
    """
    read_fd, target = handshake
    if isinstance(target, str):
        func: Callable[[str, Any, str], None] = _funcs_matrix.run_shape_via_fifo
    else:
        func = shapes.run_shape
    args = (name, target, str(path))
    if source == "timeout":
        try:
            await pool.run_sync(func, *args, timeout=CALL_TIMEOUT)
        except TimeoutError:
            return _took_handshake(read_fd)
        raise AssertionError("the call did not time out")
    if source == "aclose":
        async with InterpreterPool(1, cancel_grace=HANG, kind=kind) as own:
            raised: list[BaseException] = []

            async def call() -> None:
                try:
                    await own.run_sync(func, *args)
                except PoolClosedError as exc:
                    raised.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await _wait_handshake(read_fd)
                await own.aclose(timeout=0)
            assert len(raised) == 1
        return True
    await _cancel_after_handshake(lambda: pool.run_sync(func, *args), read_fd, source)
    return True


async def run_cell(
    name: str, interrupts_wanted: int, kind: str = "interpreter"
) -> dict[str, Any]:
    """Interrupt shape *name* until *interrupts_wanted* calls ran past the handshake.

    The pool keeps a warm worker in reserve (``min_idle=1``): every interrupted
    worker is retired, and its successor starts while the next call is prepared.
    """
    interps = _interp.live_ids()
    result: dict[str, Any] = {"interrupts": 0, "calls": 0, "failures": []}
    by_source: Counter[str] = Counter()
    with TemporaryDirectory() as tmp:
        handshake: tuple[int, int | str]
        if kind == "process":
            fifo = str(Path(tmp) / "handshake")
            os.mkfifo(fifo)
            # read and write: never at end of file, whichever worker comes and goes
            read_fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
            handshake, opened = (read_fd, fifo), [read_fd]
        else:
            read_fd, write_fd = os.pipe()
            handshake, opened = (read_fd, write_fd), [read_fd, write_fd]
        try:
            async with InterpreterPool(
                2, min_idle=1, cancel_grace=HANG, kind=kind
            ) as pool:
                while result["interrupts"] < interrupts_wanted:
                    if result["calls"] >= 3 * interrupts_wanted:
                        break  # too many timeouts before the handshake: reported
                    path = Path(tmp) / f"call{result['calls']}"
                    source = SOURCES[result["calls"] % len(SOURCES)]
                    result["calls"] += 1
                    with anyio.fail_after(HANG):
                        started = await _interrupt_once(
                            pool, kind, name, source, path, handshake
                        )
                    lines = path.read_text().splitlines() if path.exists() else []
                    if started:
                        result["interrupts"] += 1
                        by_source[source] += 1
                        ok = lines == shapes.expected(name)
                    else:  # a timeout before the handshake: the wrapper cleaned up
                        ok = not lines or lines[-2:] == list(shapes.OUTER)
                    if not ok:
                        result["failures"].append({"source": source, "lines": lines})
                stats = pool.stats()
                result["stats"] = {
                    "busy": stats.busy,
                    "abandoned": stats.abandoned,
                    "completed": stats.completed,
                    "failed": stats.failed,
                }
                # no interrupt is left over for a later call
                result["after"] = await pool.run_sync(shapes._step, 1)
        finally:
            for fd in opened:
                os.close(fd)
    result["by_source"] = dict(by_source)
    result["leaked_interpreters"] = sorted(_interp.live_ids() - interps)
    result["leaked_threads"] = [
        t.name for t in threading.enumerate() if t.name.startswith("aiointerp")
    ]
    return result


def main() -> None:
    name, backend, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kind = sys.argv[4] if len(sys.argv) > 4 else "interpreter"
    library, options = BACKENDS[backend]
    result = anyio.run(
        run_cell, name, wanted, kind, backend=library, backend_options=options
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
