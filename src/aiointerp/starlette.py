"""Starlette and FastAPI: a pool opened by the app's lifespan, calls that end with the client.

Two pieces. :func:`pool_lifespan` is the application's lifespan: its startup opens an
:class:`~aiointerp.InterpreterPool` (with ``preload``, it fails the startup when the
workers cannot start) and its shutdown closes it. :class:`Offloader` runs a
request's calls in that pool with
:func:`~aiointerp.asgi.run_until_disconnect`, and answers overload and departed
clients, and calls past their ``timeout``, with an
:class:`~starlette.exceptions.HTTPException`::

    from aiointerp.starlette import Offloader, pool_lifespan
    from myapp.cpu import count_primes  # a module that imports no web framework

    async def work(request):  # Starlette
        n = int(request.query_params["n"])
        return JSONResponse({"primes": await Offloader(request)(count_primes, n)})

    app = Starlette(
        routes=[Route("/work", work)],
        lifespan=pool_lifespan(4, preload=["myapp.cpu"], max_waiting=32),
    )

FastAPI takes the same lifespan, and :class:`Offloader` as a dependency::

    Offload = Annotated[Offloader, Depends()]
    app = FastAPI(lifespan=pool_lifespan(preload=["myapp.cpu"]))

    @app.get("/work")
    async def work(n: int, offload: Offload) -> dict[str, int]:
        return {"primes": await offload(count_primes, n)}

Importing :mod:`aiointerp` does not import this module; it needs Starlette (FastAPI
installs it).
"""

# no `from __future__ import annotations`: FastAPI reads Offloader's signature, and
# would not find the string "Request" in a class's (missing) __globals__
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, TypeVar, TypeVarTuple, Unpack

from starlette.exceptions import HTTPException
from starlette.requests import Request

from . import PoolBusyError, RemoteTraceback
from ._pool import InterpreterPool
from ._seam import PoolOptionsAndKind, reusable
from .asgi import ClientDisconnected, run_until_disconnect

__all__ = ["Offloader", "pool_lifespan"]

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")

#: The key of the pool in the lifespan state: ``request.state.aiointerp_pool``.
_STATE_KEY: Final = "aiointerp_pool"
#: Seconds a shed request's client is told to wait (``Retry-After``).
_RETRY_AFTER: Final = "1"


def pool_lifespan(
    max_workers: int | None = None, /, **pool_options: Unpack[PoolOptionsAndKind]
) -> Callable[[object], AbstractAsyncContextManager[dict[str, InterpreterPool]]]:
    """A lifespan for ``Starlette(lifespan=...)`` or ``FastAPI(lifespan=...)``.

    Each startup opens a new :class:`~aiointerp.InterpreterPool` with these options
    (so the app can start again: a test client per test) and puts it in the lifespan
    state, where :class:`Offloader` finds it (``request.state.aiointerp_pool``);
    the shutdown closes it (running calls get 5 s, then they are interrupted).

    With ``preload`` (or an ``initializer``) the startup completes only once
    ``max(min_idle, 1)`` workers have started, and fails, within the seconds a
    worker takes to start, when one cannot: the server reports
    ``Application startup failed`` with the
    :class:`~aiointerp.BrokenWorkerError` (the module that could not be imported is
    named, the worker's exception is its cause) and exits.

    The application's own lifespan can open it beside its other resources::

        pool = pool_lifespan(preload=["myapp.cpu"])

        @asynccontextmanager
        async def lifespan(app):
            async with pool(app) as state, connect_database() as db:
                yield {**state, "db": db}

    :param max_workers: as for :class:`~aiointerp.InterpreterPool`
    :param pool_options: the other options of :class:`~aiointerp.InterpreterPool`,
        every one of them (``preload``, ``min_idle``, ``max_waiting``, ``kind``,
        ``forward_output``...); they are checked here, when the app is built
    :return: the lifespan: called with the app, an async context manager whose
        value is the lifespan state ``{"aiointerp_pool": pool}``
    :raises ValueError: an option is out of range
    :raises TypeError: an option has the wrong type
    """
    pool_options = reusable(pool_options)
    InterpreterPool(max_workers, **pool_options)  # checks them now, opens nothing

    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[dict[str, InterpreterPool]]:
        async with InterpreterPool(max_workers, **pool_options) as pool:
            yield {_STATE_KEY: pool}

    return lifespan


class Offloader:
    """Runs CPU-bound calls for one request in the app's pool, until the client leaves.

    ``await Offloader(request)(func, *args)`` in a Starlette endpoint; in FastAPI a
    dependency, ``Annotated[Offloader, Depends()]``. The pool is the one
    :func:`pool_lifespan` opened. A call runs as with
    :func:`~aiointerp.asgi.run_until_disconnect`, and three outcomes become an
    :class:`~starlette.exceptions.HTTPException` (the original exception is its
    ``__cause__``), which Starlette and FastAPI answer without logging an error:

    * the pool sheds the call (:class:`~aiointerp.PoolBusyError`: its
      ``max_waiting`` callers already wait): ``503 Service Unavailable`` with
      ``Retry-After: 1``, at once;
    * the call's ``timeout`` expired (:class:`TimeoutError` raised by the pool: the
      code was interrupted, or it stopped at its deadline): ``504 Gateway
      Timeout``;
    * the client disconnected (:class:`~aiointerp.asgi.ClientDisconnected`): the
      call was interrupted, and the ``499`` response is read by nobody.

    Every other exception propagates as it is, a :class:`TimeoutError` that the
    function itself raised included (its remote traceback tells it apart). To
    answer those three otherwise, call :func:`~aiointerp.asgi.run_until_disconnect`
    with :attr:`pool` yourself.

    :param request: the request (its ASGI ``receive`` reports the disconnect)
    :raises RuntimeError: no pool in the lifespan state (the app's lifespan is not
        :func:`pool_lifespan`, or does not yield its state)
    """

    __slots__ = ("pool", "receive")

    pool: InterpreterPool
    """The app's :class:`~aiointerp.InterpreterPool` (for ``stats()``)."""

    def __init__(self, request: Request) -> None:
        pool = getattr(request.state, _STATE_KEY, None)
        if not isinstance(pool, InterpreterPool):
            raise RuntimeError(
                f"no aiointerp pool in the lifespan state (request.state.{_STATE_KEY}): "
                "build the app with lifespan=aiointerp.starlette.pool_lifespan(...), "
                "or yield its state from your own lifespan"
            )
        self.pool = pool
        self.receive = request.receive

    async def __call__(
        self,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        timeout: float | None = None,
    ) -> T:
        """Run ``func(*args)`` in the pool; interrupt it if the client disconnects.

        :param func: a synchronous, picklable callable (keyword arguments go
            through :func:`functools.partial`)
        :param args: positional arguments for ``func``
        :param timeout: as for :meth:`~aiointerp.InterpreterPool.run_sync`
        :return: what ``func`` returned
        :raises HTTPException: 503 (the pool shed the call), 504 (``timeout``
            expired; the call was interrupted) or 499 (the client disconnected;
            the call was interrupted)
        :raises Exception: whatever ``func`` or the pool raised otherwise, as for
            :func:`~aiointerp.asgi.run_until_disconnect`

        Cancellation: as for :func:`~aiointerp.asgi.run_until_disconnect`.
        """
        try:
            return await run_until_disconnect(
                self.receive, func, *args, timeout=timeout, pool=self.pool
            )
        except PoolBusyError as exc:
            raise HTTPException(
                503, "the server is busy; try again", {"Retry-After": _RETRY_AFTER}
            ) from exc
        except TimeoutError as exc:
            if _raised_in_worker(exc):  # the function's own: as any other error
                raise
            raise HTTPException(504, "the computation did not finish in time") from exc
        except ClientDisconnected as exc:
            raise HTTPException(499, "client closed request") from exc


def _raised_in_worker(exc: BaseException) -> bool:
    """Did the function raise *exc*? Then its chain, as displayed, ends with its
    remote traceback (see :func:`aiointerp._wire._rebuild.rebuild`)."""
    seen = {id(exc)}
    link: BaseException | None = exc
    while link is not None:
        follow = link.__cause__
        if follow is None and not link.__suppress_context__:
            follow = link.__context__
        if isinstance(follow, RemoteTraceback):
            return True
        if follow is None or id(follow) in seen:
            return False
        seen.add(id(follow))
        link = follow
    return False
