"""The little that anyio does not cover: a task that outlives its caller's scopes.

A pool's watcher must run for as long as the pool lives, also for the default pool
that no ``async with`` opens. On trio it is a system task; on asyncio a task of the
running loop that the pool keeps a reference to. Both are cancelled when the event
loop ends (trio when the main task returns; ``asyncio.run``/``anyio.run`` cancel
remaining tasks), and the watcher then closes the pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sniffio


def spawn_detached(async_fn: Callable[[], Awaitable[None]], name: str) -> Any:
    """Start *async_fn* as a task owned by the event loop rather than by a task group.

    Returns a handle that must be kept referenced while the task runs.
    """
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.lowlevel.spawn_system_task(async_fn, name=name)
    if library == "asyncio":
        import asyncio

        async def main() -> None:
            await async_fn()

        return asyncio.get_running_loop().create_task(main(), name=name)
    raise RuntimeError(f"aiointerp supports asyncio and trio, not {library}")


def current_loop_getter() -> Callable[[], object]:
    """A cheap function returning an identity of the running event loop.

    It raises :class:`RuntimeError` when no loop of the same library runs in the
    calling thread.
    """
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.lowlevel.current_trio_token
    import asyncio

    return asyncio.get_running_loop
