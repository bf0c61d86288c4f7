"""A FastAPI app whose CPU-bound endpoint runs in subinterpreters until the client leaves.

Run it with ``uvicorn examples.fastapi_app:app`` (from the repository root), then::

    curl 'http://127.0.0.1:8000/work?n=200000'   # CPU work, in an interpreter
    curl 'http://127.0.0.1:8000/health'          # answers while /work runs
    curl 'http://127.0.0.1:8000/stats'           # the pool's PoolStats, disconnects

The lifespan opens one :class:`aiointerp.InterpreterPool` per server process
(``AIOINTERP_WORKERS`` sets its size; default: one interpreter per CPU) and closes
it on shutdown. Endpoints get an :class:`Offloader` dependency that runs a call in
that pool with :func:`aiointerp.asgi.run_until_disconnect`: when the client
disconnects (closes the connection, times out, presses Ctrl-C in curl), the
computation is interrupted inside its interpreter and the request ends with
:class:`~aiointerp.asgi.ClientDisconnected`, answered with a 499 nobody reads.

The CPU function lives in a module that imports no web framework
(``examples/_demo_work.py``): each interpreter imports the module of the
functions it runs, and FastAPI cannot be imported in a subinterpreter at all
(its pydantic-core extension refuses to load there).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypedDict, TypeVar, TypeVarTuple, Unpack

from examples._demo_work import count_primes
from fastapi import Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel

import aiointerp
from aiointerp.asgi import ClientDisconnected, run_until_disconnect

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclasses.dataclass
class Counters:
    """Requests whose client left before the answer was ready."""

    disconnected: int = 0


class State(TypedDict):
    pool: aiointerp.InterpreterPool
    counters: Counters


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    workers = int(os.environ.get("AIOINTERP_WORKERS", "0")) or None
    async with aiointerp.InterpreterPool(workers) as pool:
        yield {"pool": pool, "counters": Counters()}  # request.state.pool, ...


class Offloader:
    """Runs CPU-bound calls for one request in the app's pool, until the client leaves.

    A dependency: declare ``offload: Offload`` in an endpoint, then
    ``await offload(func, *args)``. Raises :class:`ClientDisconnected` (answered by
    :func:`client_disconnected`) when the client disconnects during the call, which
    is interrupted in its interpreter.
    """

    def __init__(self, request: Request) -> None:
        self.receive = request.receive
        self.pool: aiointerp.InterpreterPool = request.state.pool

    async def __call__(
        self, func: Callable[[Unpack[Ts]], T], /, *args: Unpack[Ts]
    ) -> T:
        return await run_until_disconnect(self.receive, func, *args, pool=self.pool)


Offload = Annotated[Offloader, Depends()]

app = FastAPI(lifespan=lifespan)


@app.exception_handler(ClientDisconnected)
async def client_disconnected(request: Request, exc: ClientDisconnected) -> Response:
    """Nobody reads this response: answer quietly (499: "client closed request")."""
    request.state.counters.disconnected += 1
    return Response(status_code=499)


class Primes(BaseModel):
    n: int
    primes: int


@app.get("/work")
async def work(n: Annotated[int, Query(ge=0)], offload: Offload) -> Primes:
    """How many primes are below ``n``: pure-Python CPU work, in an interpreter."""
    return Primes(n=n, primes=await offload(count_primes, n))


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    """The pool's :class:`~aiointerp.PoolStats` and the disconnect count."""
    pool: aiointerp.InterpreterPool = request.state.pool
    counters: Counters = request.state.counters
    return {**dataclasses.asdict(pool.stats()), **dataclasses.asdict(counters)}
