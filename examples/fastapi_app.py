"""A FastAPI app whose CPU-bound endpoints run in workers until the client leaves.

Run it with ``uvicorn examples.fastapi_app:app`` (from the repository root), then::

    curl 'http://127.0.0.1:8000/work?n=200000'   # CPU work, in an interpreter
    curl 'http://127.0.0.1:8000/health'          # answers while /work runs
    curl 'http://127.0.0.1:8000/stats'           # the pool's PoolStats
    curl 'http://127.0.0.1:8000/digest?text=hi&rounds=1000'  # defined here: by value
    curl 'http://127.0.0.1:8000/thumbnail?size=64' -o t.png  # Pillow: in a process

:func:`aiointerp.starlette.pool_lifespan` opens one :class:`aiointerp.InterpreterPool`
per server process (``AIOINTERP_WORKERS`` sets its size; default: one worker per
CPU) and closes it on shutdown. Its workers import the CPU module before the server
starts (``preload``): a worker that cannot (the module is missing, or refuses
subinterpreters) fails the startup instead of every request. Endpoints get an
:class:`~aiointerp.starlette.Offloader` dependency that runs a call in that pool
until the client disconnects (closes the connection, times out, presses Ctrl-C in
curl): the computation is then interrupted inside its worker and the request ends
with a 499 nobody reads. Requests beyond the pool's waiting room (``max_waiting``)
get a 503 at once.

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
from typing import Annotated, Any

from examples._demo_work import count_primes
from fastapi import Depends, FastAPI, Query, Response
from PIL import Image  # Pillow refuses subinterpreters: thumbnail() runs in a process
from pydantic import BaseModel

from aiointerp.starlette import Offloader, pool_lifespan

Offload = Annotated[Offloader, Depends()]

app = FastAPI(
    lifespan=pool_lifespan(
        int(os.environ.get("AIOINTERP_WORKERS", "0")) or None,
        kind="auto",
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
    then sends it to a process (as it does from the first call with a ``from PIL
    import Image`` inside the body: it reads the imports of a function's code).
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
