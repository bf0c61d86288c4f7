"""Static checks of the public signatures; not run by pytest.

Check with ``python -m mypy --strict tests/face/typing_check.py``: every ``assert_type``
must hold, and every ``type: ignore`` must be needed (strict warns on unused ones),
which proves that mypy rejects those calls.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any, assert_type

from starlette.applications import Starlette
from starlette.requests import Request

import aiointerp
from aiointerp.asgi import ClientDisconnected, run_until_disconnect
from aiointerp.starlette import Offloader, pool_lifespan


def add(a: int, b: int) -> int:
    return a + b


def greet(name: str, *, punctuation: str = "!") -> str:
    return name + punctuation


def square(value: int) -> int:
    return value * value


async def check_run_sync_in_interpreter(pool: aiointerp.InterpreterPool) -> None:
    assert_type(await aiointerp.run_sync_in_interpreter(add, 1, 2), int)
    assert_type(await aiointerp.run_sync_in_interpreter(add, 1, 2, timeout=1.0), int)
    assert_type(await aiointerp.run_sync_in_interpreter(add, 1, 2, pool=pool), int)
    greeting = functools.partial(greet, punctuation="?")
    assert_type(await aiointerp.run_sync_in_interpreter(greeting, "x"), str)
    await aiointerp.run_sync_in_interpreter(add, 1, "2")  # type: ignore[arg-type]
    await aiointerp.run_sync_in_interpreter(add, 1)  # type: ignore[arg-type]
    await aiointerp.run_sync_in_interpreter(add, 1, 2, 3)  # type: ignore[arg-type]


async def check_pool() -> None:
    assert_type(aiointerp.current_default_pool(), aiointerp.InterpreterPool)
    async with aiointerp.InterpreterPool(
        2,
        min_idle=1,
        idle_timeout=None,
        max_tasks_per_worker=10,
        initializer=print,
        initargs=("ready",),
        cancel_grace=0.5,
    ) as pool:
        assert_type(pool, aiointerp.InterpreterPool)
        assert_type(await pool.run_sync(add, 1, 2), int)
        assert_type(await pool.run_sync(add, 1, 2, timeout=None), int)
        await pool.run_sync(add, "1", 2)  # type: ignore[arg-type]
        assert_type(pool.stats(), aiointerp.PoolStats)
        assert_type(pool.stats().busy, int)
        assert_type(pool.max_workers, int)
        assert_type(pool.map(square, [1, 2]), AsyncIterator[int])
        assert_type(pool.map(square, range(3), chunksize=64), AsyncIterator[int])
        async for result in pool.map(square, range(3), ordered=False):
            assert_type(result, int)
        await pool.aclose(timeout=1.0)
    aiointerp.InterpreterPool(2, 1)  # type: ignore[call-arg]


def check_executor() -> None:
    with aiointerp.InterpreterExecutor(
        2, interrupt_on_cancel=True, kind="process"
    ) as executor:
        assert_type(executor, aiointerp.InterpreterExecutor)
        assert_type(executor.submit(add, 1, 2).result(), int)
        executor.submit(add, 1, "2")  # type: ignore[arg-type]


def check_errors(error: aiointerp.RemoteError, tb: aiointerp.RemoteTraceback) -> None:
    assert_type(error.type_name, str)
    assert_type(error.message, str)
    assert_type(error.remote_traceback, str)
    assert_type(tb.text, str)


async def check_asgi(pool: aiointerp.InterpreterPool) -> None:
    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    assert_type(await run_until_disconnect(receive, add, 1, 2), int)
    assert_type(
        await run_until_disconnect(receive, add, 1, 2, timeout=1.0, pool=pool), int
    )
    await run_until_disconnect(receive, add, 1, "2")  # type: ignore[arg-type]
    await run_until_disconnect(add, 1, 2)  # type: ignore[arg-type]
    assert_type(ClientDisconnected("f", {}).message, dict[str, Any])


async def check_starlette(request: Request) -> None:
    app = Starlette(lifespan=pool_lifespan(2, preload=["json"], max_waiting=8))
    assert_type(app, Starlette)
    pool_lifespan(2, max_wating=8)  # type: ignore[call-arg]
    offload = Offloader(request)
    assert_type(offload.pool, aiointerp.InterpreterPool)
    assert_type(await offload(add, 1, 2), int)
    assert_type(await offload(add, 1, 2, timeout=1.0), int)
    await offload(add, 1, "2")  # type: ignore[arg-type]
