"""``@offload``: turn a sync function into an async one that runs in an interpreter.

Stdlib only at import time: a module that uses ``@offload`` is imported again inside
each worker that runs one of its functions, and this module with it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, overload

from ._inside._offloaded import SyncRef, wrapper_codes

if TYPE_CHECKING:
    from ._pool import InterpreterPool

__all__ = ["offload"]

P = ParamSpec("P")
T = TypeVar("T")

#: inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR, without importing inspect
#: (this module is imported inside workers)
_ASYNC_CODE_FLAGS: Final = 0x80 | 0x200


# Pickling. ``@offload`` rebinds the module's name ``f`` to the async wrapper, so the
# original function can no longer be pickled by reference: pickle looks ``f`` up,
# finds the wrapper and refuses. The wrapper therefore sends a
# :class:`~aiointerp._inside._offloaded.SyncRef`, which pickles as a lookup of
# ``module.qualname`` in the worker. The worker imports the module (where ``f`` is the
# wrapper too), follows ``__wrapped__`` down to the wrapper (recognised by its code
# object) and calls the original under it. The original function object is left
# untouched. In a script, ``module`` is ``__main__``: the lookup fails in a fresh
# worker, which then runs the script as ``__mp_main__`` (see
# :class:`aiointerp._inside._mainscript._Main`) and resolves again.
def _sendable(wrapper: Callable[..., Any], func: Callable[..., Any]) -> Any:
    """What to send for ``func``: itself, or a ``SyncRef`` when its name is taken.

    Looks the function's name up in its module: ``func`` itself there (``g =
    offload(f)`` keeps ``f``) pickles as usual; the wrapper, possibly under more
    decorators, needs the reference. Anything else (functions defined inside
    functions) is sent as is: by value with cloudpickle, or a clear
    :class:`~aiointerp.NotShareableError`.
    """
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module_name or not qualname:
        return func
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    while obj is not None:
        if obj is func:
            return func
        if obj is wrapper:
            return SyncRef(module_name, qualname, func)
        obj = getattr(obj, "__wrapped__", None)
    return func


def _make_wrapper(
    func: Callable[P, T],
    pool: InterpreterPool | None,
    timeout: float | None,
) -> Callable[P, Coroutine[Any, Any, T]]:
    code = getattr(func, "__code__", None)
    if code is not None and code.co_flags & _ASYNC_CODE_FLAGS:
        raise TypeError(
            f"@offload needs a synchronous function; {func.__qualname__} is async: "
            "await it directly instead"
        )
    if not callable(func):
        raise TypeError(f"@offload needs a callable, not {func!r}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
    sendable: list[Any] = []  # resolved on the first call: the name is bound by then

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        # not at the top: workers import this module too, and must not pay for anyio
        from ._api import run_sync_in_interpreter

        if not sendable:
            sendable.append(_sendable(wrapper, func))
        target = sendable[0]
        if kwargs:
            target = functools.partial(target, *args, **kwargs)
            args = ()  # type: ignore[assignment]
        result: T = await run_sync_in_interpreter(
            target, *args, timeout=timeout, pool=pool
        )
        return result

    return wrapper


wrapper_codes.update(
    const
    for const in _make_wrapper.__code__.co_consts
    if getattr(const, "co_name", None) == "wrapper"
)


@overload
def offload(func: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]: ...


@overload
def offload(
    func: None = None,
    *,
    pool: InterpreterPool | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[P, T]], Callable[P, Coroutine[Any, Any, T]]]: ...


def offload(
    func: Callable[P, T] | None = None,
    *,
    pool: InterpreterPool | None = None,
    timeout: float | None = None,
) -> (
    Callable[P, Coroutine[Any, Any, T]]
    | Callable[[Callable[P, T]], Callable[P, Coroutine[Any, Any, T]]]
):
    """Decorate a module-level sync function so that calling it runs it in an interpreter.

    ``@offload`` or ``@offload(pool=..., timeout=...)``. The decorated name becomes an
    async function with the same parameters; ``await f(*args, **kwargs)`` runs the
    original ``f`` with :func:`~aiointerp.run_sync_in_interpreter` (keyword
    arguments go through :func:`functools.partial`) and returns its result::

        @aiointerp.offload
        def checksum(data: bytes, *, rounds: int = 1) -> str: ...

        digest = await checksum(blob, rounds=3)

    The original stays reachable as ``f.__wrapped__`` (to call it synchronously) and
    works in workers: they import the module, where the name is the wrapper again,
    and run the original (module-level functions and methods of module-level
    classes; this also works in a ``__main__`` script whose top-level code is
    guarded by ``if __name__ == "__main__":``). Decorators stacked above
    ``@offload`` must set ``__wrapped__`` (:func:`functools.wraps` does).

    :param func: the function, when used as ``@offload`` without parentheses
    :param pool: run in this pool instead of the running event loop's default pool
    :param timeout: per-call timeout in seconds, as for
        :func:`~aiointerp.run_sync_in_interpreter`
    :return: the async wrapper, or a decorator that makes it
    :raises TypeError: ``func`` is async or not callable
    :raises ValueError: ``timeout`` is negative

    Cancellation and timeouts behave as for :func:`~aiointerp.run_sync_in_interpreter`:
    cancelling the awaiting task interrupts the code in its interpreter.
    """
    if func is not None:
        return _make_wrapper(func, pool, timeout)

    def decorate(func: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
        return _make_wrapper(func, pool, timeout)

    return decorate


offload.__module__ = "aiointerp"
