"""A Dask client and its futures, from asyncio or trio: :class:`aiointerp.dask.DaskPool`
waits for them with either kind of client, asynchronous (``Client(asynchronous=True)``,
on the same asyncio loop) or synchronous (its own event loop in a thread)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    import distributed

__all__ = ["call", "cancel", "wait"]


async def wait(
    client: distributed.Client,
    future: distributed.Future[Any],
    call_soon: Callable[[Callable[[], object]], object],
) -> tuple[bool, Any]:
    """Wait for ``future``; return ``(True, result)`` or ``(False, exception)``.

    :param call_soon: runs a callback on the waiting event loop, from any thread
    """
    if client.asynchronous:
        try:
            return True, await future
        except Exception as exc:
            return False, exc
    done = anyio.Event()
    outcome: list[tuple[bool, Any]] = []

    def on_done(future: distributed.Future[Any]) -> None:  # in Dask's callback thread
        try:
            outcome.append((True, future.result()))
        except BaseException as exc:
            outcome.append((False, exc))
        try:
            call_soon(done.set)
        except RuntimeError:  # the event loop is gone: nobody waits
            pass

    future.add_done_callback(on_done)  # type: ignore[no-untyped-call]
    await done.wait()
    return outcome[0]


async def cancel(
    client: distributed.Client, futures: list[distributed.Future[Any]]
) -> None:
    """Cancel ``futures`` (none: nothing to do)."""
    if futures:
        await call(client, client.cancel, futures)


async def call(
    client: distributed.Client, method: Callable[..., Any], *args: Any
) -> Any:
    """Call a method of ``client``: awaited (asynchronous client) or in a thread."""
    if client.asynchronous:
        return await method(*args)
    return await anyio.to_thread.run_sync(functools.partial(method, *args))
