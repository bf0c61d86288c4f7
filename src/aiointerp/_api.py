"""The module-level entry points: the default pool of each event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack

from anyio.lowlevel import RunVar

from ._pool import InterpreterPool

__all__ = ["current_default_pool", "run_sync_in_interpreter"]

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")

_default_pool: RunVar[InterpreterPool] = RunVar("aiointerp_default_pool")


def current_default_pool() -> InterpreterPool:
    """Return the default :class:`InterpreterPool` of the running event loop.

    Created on first use with the default options (``max_workers=os.cpu_count()``,
    idle interpreters retired after 30 s). Its watcher starts with the first call
    and ends with the event loop, which destroys its interpreters: no ``async with``
    is needed. Must be called from inside an event loop.
    """
    pool = _default_pool.get(None)
    if pool is None or pool._closed.is_set():  # its watcher was cancelled: start over
        pool = InterpreterPool()
        _default_pool.set(pool)
    return pool


async def run_sync_in_interpreter(
    func: Callable[[Unpack[PosArgsT]], T],
    /,
    *args: Unpack[PosArgsT],
    timeout: float | None = None,
    pool: InterpreterPool | None = None,
) -> T:
    """Run ``func(*args)`` in a subinterpreter and return its result.

    The function runs in an interpreter of ``pool``, or of the running event loop's
    default pool (:func:`current_default_pool`), on its own thread and with its own
    GIL: CPU-bound work runs in parallel with the event loop and with other calls.
    Keyword arguments go through :func:`functools.partial`.

    :param func: a synchronous, picklable callable (see :meth:`InterpreterPool.run_sync`)
    :param args: positional arguments for ``func``
    :param timeout: seconds from now (queueing included) after which the call is
        interrupted and :class:`TimeoutError` raised
    :param pool: the pool to use instead of the default one
    :return: what ``func`` returned

    Cancellation: cancelling the caller while it waits for a worker means the call
    never runs; cancelling it while the call runs interrupts the code inside the
    interpreter (:class:`~aiointerp.Interrupted` is raised there) and re-raises the
    cancellation once the code stopped, or after the pool's ``cancel_grace``.
    """
    if pool is None:
        pool = current_default_pool()
    return await pool.run_sync(func, *args, timeout=timeout)


current_default_pool.__module__ = "aiointerp"
run_sync_in_interpreter.__module__ = "aiointerp"
