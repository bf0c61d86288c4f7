"""A FastAPI app whose CPU-bound endpoint runs in subinterpreters until the client leaves.

Run it with ``uvicorn examples.fastapi_app:app`` (from the repository root), then::

    curl 'http://127.0.0.1:8000/work?n=200000'   # CPU work, in an interpreter
    curl 'http://127.0.0.1:8000/health'          # answers while /work runs
    curl 'http://127.0.0.1:8000/stats'           # the pool's PoolStats, disconnects
    curl 'http://127.0.0.1:8000/digest?text=hi&rounds=1000'  # defined here: by value
    curl 'http://127.0.0.1:8000/thumbnail?size=64' -o t.png  # Pillow: in a process

The lifespan opens one :class:`aiointerp.InterpreterPool` per server process
(``AIOINTERP_WORKERS`` sets its size; default: one interpreter per CPU) and closes
it on shutdown. Endpoints get an :class:`Offloader` dependency that runs a call in
that pool with :func:`aiointerp.asgi.run_until_disconnect`: when the client
disconnects (closes the connection, times out, presses Ctrl-C in curl), the
computation is interrupted inside its interpreter and the request ends with
:class:`~aiointerp.asgi.ClientDisconnected`, answered with a 499 nobody reads.

The pool is ``kind="auto"``: each function runs where it can, cheapest first.
``count_primes`` lives in a module that imports no web framework
(``examples/_demo_work.py``) and runs in an interpreter. ``digest`` is defined
here, beside its endpoint: this module imports FastAPI, which cannot be imported in
a subinterpreter (its pydantic-core extension refuses), so the function is sent
there by value (cloudpickle). ``thumbnail`` needs Pillow, which refuses
subinterpreters too: it runs in a worker process, with the same cancellation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypedDict, TypeVar, TypeVarTuple, Unpack

from examples._demo_work import count_primes
from fastapi import Depends, FastAPI, Query, Request, Response
from PIL import Image  # Pillow refuses subinterpreters: thumbnail() runs in a process
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
    async with aiointerp.InterpreterPool(workers, kind="auto") as pool:
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


def digest(text: str, rounds: int) -> str:
    """CPU work defined beside its endpoint: runs in an interpreter, sent by value."""
    value = hashlib.sha256(text.encode()).digest()
    for _ in range(rounds):
        value = hashlib.sha256(value).digest()
    return value.hex()


@app.get("/digest")
async def digest_endpoint(
    text: str, rounds: Annotated[int, Query(ge=0, le=10_000_000)], offload: Offload
) -> dict[str, str]:
    return {"digest": await offload(digest, text, rounds)}


def thumbnail(size: int) -> bytes:
    """Draw a gradient and scale it down with Pillow: runs in a worker process.

    ``Image`` is a global of this module: loading the function, even by value, needs
    Pillow, which an interpreter refuses before the function starts; ``kind="auto"``
    then sends it to a process (an ``import`` inside the body would fail the first
    call instead: aiointerp never runs code twice).
    """
    image = Image.linear_gradient("L").resize((512, 512)).convert("RGB")
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@app.get("/thumbnail")
async def thumbnail_endpoint(
    size: Annotated[int, Query(ge=1, le=512)], offload: Offload
) -> Response:
    return Response(await offload(thumbnail, size), media_type="image/png")
