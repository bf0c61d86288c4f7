"""A FastAPI app whose CPU-bound endpoint runs in subinterpreters until the client leaves.

Run it with ``uvicorn examples.fastapi_app:app`` (from the repository root), then::

    curl 'http://127.0.0.1:8000/work?n=200000'   # CPU work, in an interpreter
    curl 'http://127.0.0.1:8000/health'          # answers while /work runs
    curl 'http://127.0.0.1:8000/stats'           # the pool's PoolStats

:func:`aiointerp.starlette.pool_lifespan` opens one :class:`aiointerp.InterpreterPool`
per server process (``AIOINTERP_WORKERS`` sets its size; default: one interpreter
per CPU) and closes it on shutdown. Its workers import the CPU module before the
server starts (``preload``): a worker that cannot (the module is missing, or
refuses subinterpreters) fails the startup instead of every request. Endpoints get
an :class:`~aiointerp.starlette.Offloader` dependency that runs a call in that
pool until the client disconnects (closes the connection, times out, presses
Ctrl-C in curl): the computation is then interrupted inside its interpreter and
the request ends with a 499 nobody reads. Requests beyond the pool's waiting room
(``max_waiting``) get a 503 at once.

The CPU function lives in a module that imports no web framework
(``examples/_demo_work.py``): each interpreter imports the module of the
functions it runs, and FastAPI cannot be imported in a subinterpreter at all
(its pydantic-core extension refuses to load there).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated, Any

from examples._demo_work import count_primes
from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel

from aiointerp.starlette import Offloader, pool_lifespan

Offload = Annotated[Offloader, Depends()]

app = FastAPI(
    lifespan=pool_lifespan(
        int(os.environ.get("AIOINTERP_WORKERS", "0")) or None,
        preload=["examples._demo_work"],
        max_waiting=64,
    )
)


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
async def stats(offload: Offload) -> dict[str, Any]:
    """The pool's :class:`~aiointerp.PoolStats`."""
    return dataclasses.asdict(offload.pool.stats())
