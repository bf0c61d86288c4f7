"""examples/web_app.py (Starlette) served by a real uvicorn process on the loopback
interface."""

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

pytestmark = pytest.mark.anyio

APP = "examples.web_app:app"


server = server_fixture(APP)


async def test_concurrent_cpu_requests(server: Server) -> None:
    await check_concurrent_cpu_requests(server, bad_status=400)


async def test_health_answers_and_disconnect_interrupts(server: Server) -> None:
    await check_health_and_disconnect(server)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_clean_shutdown(tmp_path: Path, signum: int) -> None:
    server = start_server(APP, tmp_path)
    try:
        response = httpx.get(f"{server.url}/work", params={"n": 10_000}, timeout=60)
        assert response.json() == {"n": 10_000, "primes": 1229}
    finally:
        code, log = server.stop(signum)
    # after its graceful shutdown uvicorn re-raises the signal it caught (see
    # uvicorn.Server.capture_signals): SIGINT ends in exit code 0, SIGTERM kills the
    # process with the signal's default action
    assert code == (0 if signum == signal.SIGINT else -signum), log
    assert "Application shutdown complete" in log
    assert_clean_log(log)
