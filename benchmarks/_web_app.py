"""The web suite's app: FastAPI on uvicorn, its CPU endpoints run off the event loop.

``create_app(strategy, workers)`` builds the app; the strategy says what runs the
CPU work of its endpoints, with *workers* workers:

* ``auto``, ``process``, ``interpreter``: an :class:`aiointerp.InterpreterPool` of
  that ``kind``, opened by :func:`aiointerp.starlette.pool_lifespan`, the calls made
  through an :class:`aiointerp.starlette.Offloader` dependency (as the docs and
  ``examples/fastapi_app.py`` recommend). ``interpreter`` can serve ``/primes``
  only: numpy, pandas, pydantic and Pillow refuse subinterpreters;
* ``to_thread``: ``anyio.to_thread.run_sync`` with a ``CapacityLimiter(workers)``;
* ``executor``: a ``concurrent.futures.ProcessPoolExecutor(workers)`` (``spawn``,
  as the other suites start it) through ``loop.run_in_executor``.

Endpoints: ``/numpy``, ``/pandas``, ``/pydantic``, ``/pillow`` (the functions of
:mod:`benchmarks._web_work`), ``/primes`` (pure Python:
:func:`benchmarks._work.count_primes`), each taking an optional size (``?n=``);
``/health`` (no work) and ``/stats`` (the pool's ``PoolStats`` for the aiointerp
strategies, the server's event loop and pid for all).

Run it by hand (from the repository root)::

    python -m benchmarks._web_app --strategy auto --workers 2 --port 8000
    curl 'http://127.0.0.1:8000/numpy'; curl 'http://127.0.0.1:8000/stats'

The web suite (:mod:`benchmarks._web_scenarios`) starts it with ``python -c`` (see
:data:`LAUNCH`) on a listening socket it bound itself (``--fd``): a ``-m`` main
module is imported again by every worker that ``ProcessPoolExecutor`` spawns.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations,
# which name the dependency of this app's strategy (a local of create_app)
import argparse
import asyncio
import concurrent.futures
import dataclasses
import functools
import multiprocessing
import os
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.to_thread
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request

from aiointerp.starlette import Offloader, pool_lifespan

from . import _web_work
from ._work import count_primes

#: the offloading strategies, by the name ``--strategy`` takes
STRATEGIES = ("auto", "process", "interpreter", "to_thread", "executor")
#: the aiointerp strategies: ``kind=`` of the pool
KINDS = ("auto", "process", "interpreter")
#: the endpoints doing CPU work: path -> the function and its default argument
#: (the web suite scales the sizes down for its smoke runs: AIOINTERP_WEB_SCALE)
_SCALE = float(os.environ.get("AIOINTERP_WEB_SCALE", "1"))
ENDPOINTS: dict[str, tuple[Callable[[int], object], int]] = {
    path: (func, max(2, int(size * _SCALE)))
    for path, (func, size) in {
        "/numpy": (_web_work.numpy_work, _web_work.NUMPY_SIZE),
        "/pandas": (_web_work.pandas_work, _web_work.PANDAS_ROWS),
        "/pydantic": (_web_work.pydantic_work, _web_work.PYDANTIC_ITEMS),
        "/pillow": (_web_work.pillow_work, _web_work.PILLOW_SIZE),
        "/primes": (count_primes, _web_work.PRIMES_N),
    }.items()
}
#: what the web suite runs with ``python -c``: this module's main(), arguments after
LAUNCH = (
    "import sys; from benchmarks._web_app import main; sys.exit(main(sys.argv[1:]))"
)

#: with --exit-on-eof: seconds the server has to stop once its stdin ended
EXIT_GRACE = 20.0

Run = Callable[..., Awaitable[Any]]
State = dict[str, Any]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[State]]


def _lifespan(strategy: str, workers: int) -> Lifespan:
    if strategy in KINDS:
        return pool_lifespan(workers, kind=strategy)
    if strategy == "to_thread":

        @asynccontextmanager
        async def threads(app: FastAPI) -> AsyncIterator[State]:
            yield {"limiter": anyio.CapacityLimiter(workers)}

        return threads
    if strategy == "executor":

        @asynccontextmanager
        async def executor(app: FastAPI) -> AsyncIterator[State]:
            pool = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn")
            )
            try:
                yield {"executor": pool}
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(pool.shutdown)

        return executor
    raise ValueError(f"unknown strategy {strategy!r}: one of {', '.join(STRATEGIES)}")


def _runner(strategy: str) -> Callable[[Request], Run]:
    """The dependency that gives an endpoint ``run(func, *args)`` for *strategy*."""

    def aiointerp_run(request: Request) -> Run:
        return Offloader(request)

    def thread_run(request: Request) -> Run:
        limiter = request.state.limiter
        return functools.partial(anyio.to_thread.run_sync, limiter=limiter)

    def executor_run(request: Request) -> Run:
        executor = request.state.executor

        async def run(func: Callable[..., Any], *args: Any) -> Any:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, func, *args)

        return run

    if strategy in KINDS:
        return aiointerp_run
    return thread_run if strategy == "to_thread" else executor_run


def create_app(strategy: str, workers: int) -> FastAPI:
    """The app, its CPU work run by *strategy* (one of :data:`STRATEGIES`)."""
    app = FastAPI(lifespan=_lifespan(strategy, workers))
    runner = _runner(strategy)

    def endpoint(func: Callable[[int], object], default: int) -> Callable[..., Any]:
        async def work(
            run: Annotated[Run, Depends(runner)],
            n: Annotated[int, Query(ge=1, le=10_000_000)] = default,
        ) -> dict[str, Any]:
            return {"result": await run(func, n)}

        return work

    for path, (func, default) in ENDPOINTS.items():
        app.add_api_route(path, endpoint(func, default), methods=["GET"])

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        """The pool's counters (aiointerp), the server's loop and pid (all)."""
        loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
        answer: dict[str, Any] = {
            "strategy": strategy,
            "workers": workers,
            "loop": loop,
            "pid": os.getpid(),
        }
        if strategy in KINDS:
            pool = getattr(request.state, "aiointerp_pool", None)
            if pool is None:  # pragma: no cover - the lifespan always sets it
                raise HTTPException(500, "no pool")
            answer["pool"] = dataclasses.asdict(pool.stats())
        return answer

    return app


def _exit_on_eof(server: uvicorn.Server) -> None:
    """Stop the server once stdin ends; exit anyway :data:`EXIT_GRACE` s later."""
    sys.stdin.buffer.read()
    server.should_exit = True
    threading.Event().wait(EXIT_GRACE)
    os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Serve the app with uvicorn until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._web_app", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--fd", type=int, default=None, help="serve on this listening socket instead"
    )
    parser.add_argument("--loop", default="auto", help="uvicorn's --loop")
    parser.add_argument(
        "--exit-on-eof",
        action="store_true",
        help="stop when standard input ends (the parent closed it or died)",
    )
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        create_app(args.strategy, args.workers),
        host=args.host,
        port=args.port,
        loop=args.loop,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if args.exit_on_eof:
        threading.Thread(target=_exit_on_eof, args=(server,), daemon=True).start()
    sockets = None if args.fd is None else [socket.socket(fileno=args.fd)]
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:  # uvicorn raises the SIGINT again once it has stopped
        pass
    return 0 if server.started else 3


if __name__ == "__main__":
    raise SystemExit(main())
