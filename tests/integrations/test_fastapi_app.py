"""examples/fastapi_app.py served by a real uvicorn process on the loopback interface.

The checks shared with examples/web_app.py (tests/_server.py), validation, and a
clean log; aiointerp.starlette itself is tested in tests/integrations/test_starlette.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from _server import (
    Server,
    assert_clean_log,
    check_concurrent_cpu_requests,
    check_health_and_disconnect,
    server_fixture,
    start_server,
)

pytest.importorskip("fastapi", reason="fastapi is not installed")

pytestmark = pytest.mark.anyio

APP = "examples.fastapi_app:app"


server = server_fixture(APP)


async def test_concurrent_cpu_requests(server: Server) -> None:
    await check_concurrent_cpu_requests(server, bad_status=422)


async def test_health_answers_and_disconnect_interrupts(server: Server) -> None:
    await check_health_and_disconnect(server)  # cancelled +2, nothing abandoned


async def test_validation(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        negative = await client.get("/work", params={"n": -1})
        missing = await client.get("/work")
        zero = await client.get("/work", params={"n": 0})
    assert (negative.status_code, missing.status_code) == (422, 422)
    assert zero.json() == {"n": 0, "primes": 0}


def test_clean_shutdown_on_sigint(tmp_path: Path) -> None:
    server = start_server(APP, tmp_path)
    try:
        response = httpx.get(f"{server.url}/work", params={"n": 10_000}, timeout=60)
        assert response.json() == {"n": 10_000, "primes": 1229}
    finally:
        code, log = server.stop(signal.SIGINT)
    assert code == 0, log
    assert "Application shutdown complete" in log
    assert_clean_log(log)


async def test_functions_of_the_app_module_and_pillow_run_through_auto(
    server: Server,
) -> None:
    import hashlib
    import io

    from PIL import Image

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        # defined in the app's module, which imports FastAPI: by value, in an
        # interpreter (the HTTP 500 of a first FastAPI app is gone)
        response = await client.get("/digest", params={"text": "hi", "rounds": 3})
        assert response.status_code == 200, response.text
        expected = hashlib.sha256(b"hi").digest()
        for _ in range(3):
            expected = hashlib.sha256(expected).digest()
        assert response.json() == {"digest": expected.hex()}
        # Pillow refuses subinterpreters: a worker process makes the thumbnail
        response = await client.get("/thumbnail", params={"size": 64})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        stats = (await client.get("/stats")).json()
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (64, 64)
    assert stats["processes"] >= 1
    assert stats["interpreters"] >= 1
