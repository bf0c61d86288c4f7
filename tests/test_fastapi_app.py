"""examples/fastapi_app.py served by a real uvicorn process on the loopback interface.

The checks shared with examples/web_app.py (tests/_server.py), validation, and a
clean log; aiointerp.starlette itself is tested in tests/test_starlette.py.
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
