"""A Starlette app and a FastAPI app built on :mod:`aiointerp.starlette`, for uvicorn.

tests/integrations/test_starlette.py serves them with a real uvicorn process (tests/_server.py).
``/work?n=N`` counts the primes below ``N`` (``&timeout=S``: with that timeout).
The environment configures the pool: ``AIOINTERP_WORKERS`` (max_workers),
``AIOINTERP_MAX_WAITING`` (unset: no limit) and ``AIOINTERP_PRELOAD`` (module names,
comma-separated). The CPU function lives in a module that imports no framework.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

import dataclasses
import os
from typing import Annotated, Any

from examples._demo_work import count_primes
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aiointerp.starlette import Offloader, pool_lifespan

_waiting = os.environ.get("AIOINTERP_MAX_WAITING")
lifespan = pool_lifespan(
    int(os.environ.get("AIOINTERP_WORKERS", "0")) or None,
    max_waiting=None if _waiting is None else int(_waiting),
    preload=os.environ.get("AIOINTERP_PRELOAD", "examples._demo_work").split(","),
)


# -- Starlette


async def work(request: Request) -> Response:
    n = int(request.query_params["n"])
    timeout = request.query_params.get("timeout")
    primes = await Offloader(request)(
        count_primes, n, timeout=None if timeout is None else float(timeout)
    )
    return JSONResponse({"n": n, "primes": primes})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def stats(request: Request) -> Response:
    return JSONResponse(dataclasses.asdict(Offloader(request).pool.stats()))


starlette_app = Starlette(
    routes=[Route("/work", work), Route("/health", health), Route("/stats", stats)],
    lifespan=lifespan,
)


# -- FastAPI

Offload = Annotated[Offloader, Depends()]
fastapi_app = FastAPI(lifespan=lifespan)


@fastapi_app.get("/work")
async def fastapi_work(
    n: int, offload: Offload, timeout: float | None = None
) -> dict[str, int]:
    return {"n": n, "primes": await offload(count_primes, n, timeout=timeout)}


@fastapi_app.get("/health")
async def fastapi_health() -> dict[str, str]:
    return {"status": "ok"}


@fastapi_app.get("/stats")
async def fastapi_stats(offload: Offload) -> dict[str, Any]:
    return dataclasses.asdict(offload.pool.stats())
