"""Stop the work of an ASGI request when its client goes away.

ASGI servers (uvicorn, hypercorn, granian...) do not cancel a request handler whose
client disconnected: the handler runs to its end and its response is dropped. They
report the disconnect on the request's ``receive`` channel instead, as an
``http.disconnect`` message (``websocket.disconnect`` for a WebSocket).
:func:`run_until_disconnect` runs a call in an interpreter while it watches that
channel, and cancels the call, which interrupts its code, when the client leaves::

    from aiointerp.asgi import ClientDisconnected, run_until_disconnect

    async def work(request):  # Starlette; FastAPI, Litestar: the same request.receive
        try:
            primes = await run_until_disconnect(request.receive, count_primes, n)
        except ClientDisconnected:
            return Response(status_code=499)  # nobody reads it
        return JSONResponse({"primes": primes})

The module depends on no web framework: ``receive`` is the plain ASGI callable, and
it makes no response. :mod:`aiointerp.starlette` builds on it for Starlette and
FastAPI (a lifespan-managed pool, and a dependency that answers a shed call,
:class:`~aiointerp.PoolBusyError`, with a 503 and a departed client with a 499).
Importing :mod:`aiointerp` does not import it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.lowlevel

from . import AiointerpError
from ._api import current_default_pool
from ._pool import InterpreterPool
from ._seam import describe

__all__ = ["ClientDisconnected", "run_until_disconnect"]

_T = TypeVar("_T")
_PosArgsT = TypeVarTuple("_PosArgsT")

#: The ``type`` of the messages that mean "the client is gone".
_DISCONNECT_TYPES: Final = frozenset({"http.disconnect", "websocket.disconnect"})


class ClientDisconnected(AiointerpError):
    """Raised by :func:`run_until_disconnect` when the client left before the call ended.

    The ASGI server reported the disconnect (an ``http.disconnect`` or
    ``websocket.disconnect`` message) while the call waited for a worker or ran; it
    was cancelled, which interrupted its code in the interpreter (see the
    Cancellation paragraph of :func:`run_until_disconnect`). Nobody reads a response
    to this request any more: return any response (frameworks need one; 499 "client
    closed request" is customary) or let an exception handler do it.

    :ivar function: the name of the function that was cancelled
    :ivar message: the disconnect message as ``receive`` returned it (for a WebSocket
        it carries the close ``code``)
    """

    __module__ = "aiointerp.asgi"

    def __init__(self, function: str, message: Mapping[str, Any]) -> None:
        super().__init__(function, message)
        self.function = function
        self.message: dict[str, Any] = dict(message)

    def __str__(self) -> str:
        return (
            f"the client disconnected ({self.message.get('type')}) before "
            f"{self.function} finished; the call was cancelled"
        )


async def run_until_disconnect(
    receive: Callable[[], Awaitable[Mapping[str, Any]]],
    func: Callable[[Unpack[_PosArgsT]], _T],
    /,
    *args: Unpack[_PosArgsT],
    timeout: float | None = None,
    pool: InterpreterPool | None = None,
) -> _T:
    """Run ``func(*args)`` in an interpreter; cancel it if the client disconnects.

    Works with any ASGI framework: pass the request's ``receive`` callable
    (``request.receive`` in Starlette, FastAPI and Litestar; Quart cancels a
    disconnected client's handler itself and needs no helper). A task awaits ``receive()`` beside the call. An ``http.disconnect`` or
    ``websocket.disconnect`` message cancels the call, and
    :class:`ClientDisconnected` is raised once its code stopped. Every other message
    (``http.request`` body chunks, ``websocket.receive`` frames) is consumed and
    dropped: read the request body *before* the call if the handler needs it, and
    do not use this on a WebSocket that expects messages during the call. A call
    that finished is never discarded: its result is returned, or its exception
    raised, even if the disconnect arrived at the same moment.

    :param receive: the ASGI ``receive`` callable of the request or WebSocket
    :param func: a synchronous, picklable callable, as for
        :meth:`InterpreterPool.run_sync <aiointerp.InterpreterPool.run_sync>`
    :param args: positional arguments for ``func`` (keyword arguments go through
        :func:`functools.partial`)
    :param timeout: seconds from now (queueing included) after which the call is
        interrupted and :class:`TimeoutError` raised; ``None`` for none
    :param pool: the pool to run in (typically opened in the application's
        lifespan); default: the running event loop's
        :func:`~aiointerp.current_default_pool`
    :return: what ``func`` returned
    :raises ClientDisconnected: the client disconnected before the call finished;
        the call was cancelled
    :raises TimeoutError: ``timeout`` expired; the code was interrupted
    :raises PoolBusyError: the pool's ``max_waiting`` callers already wait: answer
        it with a 503 (:class:`aiointerp.starlette.Offloader` does)
    :raises Exception: whatever ``func`` raised, with its type (as for
        :meth:`~aiointerp.InterpreterPool.run_sync`: also
        :class:`~aiointerp.NotShareableError`, :class:`~aiointerp.PoolClosedError`...)
    :raises Exception: whatever ``receive()`` raised; the call was cancelled first

    Cancellation: a disconnect cancels the call exactly as cancelling the caller
    would. If it still waits for a worker, it never runs; if it runs, the code in
    the interpreter is interrupted (:class:`~aiointerp.Interrupted` is raised there,
    ``finally`` blocks run) and :class:`ClientDisconnected` is raised once the code
    stopped, or after the pool's ``cancel_grace`` for code that cannot be
    interrupted (then abandoned). Cancelling the caller itself (a cancel scope, an
    asyncio task cancel, a server that cancels handlers) interrupts the call the
    same way and propagates as that cancellation, never as
    :class:`ClientDisconnected`. In every case the watching task is cancelled
    before this function returns or raises; cancelling a pending ``receive()`` is
    safe with ASGI servers (Starlette's ``request.is_disconnected()`` does it).
    """
    if pool is None:
        pool = current_default_pool()
    disconnect: Mapping[str, Any] | None = None
    receive_error: Exception | None = None
    error: Exception | None = None
    result: list[_T] = []
    call = anyio.CancelScope()
    label = describe(func)

    async def watch() -> None:
        nonlocal disconnect, receive_error
        try:
            while (message := await receive())["type"] not in _DISCONNECT_TYPES:
                # a body chunk nobody read, a WebSocket frame: dropped; and should
                # a receive() return without ever suspending, the loop still runs
                await anyio.lowlevel.checkpoint()
        except Exception as exc:  # not BaseException: cancellation passes through
            receive_error = exc
        else:
            disconnect = message
        call.cancel()  # interrupts the code in its interpreter

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, name=f"aiointerp.asgi watching for {label}")
            with call:
                try:
                    result.append(await pool.run_sync(func, *args, timeout=timeout))
                except Exception as exc:  # re-raised below, outside the task group
                    error = exc
            tg.cancel_scope.cancel()  # the call ended: stop watching
        if error is not None:
            raise error
        if result:
            return result[0]
        # the watcher cancelled the call; a cancellation of the caller comes first
        await anyio.lowlevel.checkpoint_if_cancelled()
        if receive_error is not None:
            raise receive_error
        assert disconnect is not None
        raise ClientDisconnected(label, disconnect) from None
    finally:
        del error, receive_error  # no reference cycles through the tracebacks
