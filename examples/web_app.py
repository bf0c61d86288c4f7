"""A Starlette app whose CPU-bound endpoint runs in subinterpreters.

Run it with ``uvicorn examples.web_app:app`` (from the repository root), then::

    curl 'http://127.0.0.1:8000/work?n=200000'   # CPU work, in an interpreter
    curl 'http://127.0.0.1:8000/health'          # answers while /work runs
    curl 'http://127.0.0.1:8000/stats'           # the pool's PoolStats

The lifespan opens one :class:`aiointerp.InterpreterPool` per server process
(``AIOINTERP_WORKERS`` sets its size; default: one interpreter per CPU) and closes
it on shutdown. A client that disconnects before its answer is ready cancels the
call, which interrupts the computation inside its interpreter: ASGI servers do not
cancel the handler themselves, :func:`aiointerp.asgi.run_until_disconnect` watches
the request's ``receive`` channel for the disconnect beside the call.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import aiointerp
from aiointerp.asgi import ClientDisconnected, run_until_disconnect


def count_primes(limit: int) -> int:
    """Pure-Python CPU work: how many primes are below ``limit``.

    Functions sent to interpreters are found by module and name: each interpreter
    imports this module (and Starlette with it) once. Keep them in a light module of
    their own in a real application.
    """
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


class State(TypedDict):
    pool: aiointerp.InterpreterPool


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    workers = int(os.environ.get("AIOINTERP_WORKERS", "0")) or None
    async with aiointerp.InterpreterPool(workers) as pool:
        yield {"pool": pool}  # request.state.pool in the endpoints


async def work(request: Request) -> Response:
    try:
        n = int(request.query_params["n"])
    except (KeyError, ValueError):
        return JSONResponse({"error": "pass an integer n"}, status_code=400)
    try:
        primes = await run_until_disconnect(
            request.receive, count_primes, n, pool=request.state.pool
        )
    except ClientDisconnected:  # the call was interrupted in its interpreter
        return Response(status_code=499)  # nobody reads it: "client closed request"
    return JSONResponse({"n": n, "primes": primes})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def stats(request: Request) -> Response:
    pool: aiointerp.InterpreterPool = request.state.pool
    return JSONResponse(dataclasses.asdict(pool.stats()))


app = Starlette(
    routes=[
        Route("/work", work),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)
