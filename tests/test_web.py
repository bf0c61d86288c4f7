"""examples/web_app.py served by a real uvicorn process on the loopback interface."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
#: Known prime counts: pi(10**4), pi(2*10**4), pi(3*10**4), pi(5*10**4)
PRIMES = {10_000: 1229, 20_000: 2262, 30_000: 3245, 50_000: 5133}
#: Far too long to finish while a test waits: only cancellation ends it.
ENDLESS = 10**10


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    stderr: Path

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:  # hang guard
            self.process.kill()
            self.process.wait()
            raise
        return code, self.stderr.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(logs: Path) -> Server:
    port = free_port()
    stderr = logs / f"uvicorn-{port}.err"
    with stderr.open("wb") as err, (logs / f"uvicorn-{port}.out").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.web_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=ROOT,
            env={**os.environ, "AIOINTERP_WORKERS": "2"},
            stdout=out,
            stderr=err,
        )
    server = Server(process, f"http://127.0.0.1:{port}", stderr)
    for _ in range(600):  # bounded: up to ~60 s on a loaded machine
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited early:\n{stderr.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # waiting for another process to listen: polling, bounded
    server.stop(signal.SIGKILL)
    raise RuntimeError("uvicorn did not answer /health")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("uvicorn"))
    yield server
    code, stderr = server.stop()
    assert code == 0, stderr


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/stats")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def wait_for_stats(
    client: httpx.AsyncClient, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll /stats until ``predicate`` holds (the server is another process)."""
    with anyio.fail_after(60):  # hang guard
        # the state lives in another process: no event to wait on, so poll it
        while not predicate(current := await stats(client)):  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return current


async def test_concurrent_cpu_requests(server: Server) -> None:
    results: dict[int, Any] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def get(n: int) -> None:
            response = await client.get("/work", params={"n": n})
            response.raise_for_status()
            results[n] = response.json()

        async with anyio.create_task_group() as tg:
            for n in PRIMES:
                tg.start_soon(get, n)
        bad = await client.get("/work", params={"n": "many"})
    assert results == {n: {"n": n, "primes": count} for n, count in PRIMES.items()}
    assert bad.status_code == 400


async def test_health_answers_and_disconnect_interrupts(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        before = await stats(client)
        async with anyio.create_task_group() as tg:

            async def endless() -> None:
                async with httpx.AsyncClient(base_url=server.url, timeout=None) as c:
                    await c.get("/work", params={"n": ENDLESS})
                pytest.fail("the endless request returned")

            for _ in range(2):
                tg.start_soon(endless)
            await wait_for_stats(client, lambda s: s["busy"] == 2)
            # both interpreters are busy with CPU work: the event loop still answers
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.json() == {"status": "ok"}
            assert (await stats(client))["busy"] == 2
            tg.cancel_scope.cancel()  # the clients close their connections
        after = await wait_for_stats(
            client,
            lambda s: s["busy"] == 0 and s["cancelled"] >= before["cancelled"] + 2,
        )
    assert after["cancelled"] == before["cancelled"] + 2
    assert after["abandoned"] == before["abandoned"]  # interrupted in time
    assert after["completed"] == before["completed"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_clean_shutdown(tmp_path: Path, signum: int) -> None:
    server = start_server(tmp_path)
    try:
        response = httpx.get(f"{server.url}/work", params={"n": 10_000}, timeout=60)
        assert response.json() == {"n": 10_000, "primes": 1229}
    finally:
        code, stderr = server.stop(signum)
    # after its graceful shutdown uvicorn re-raises the signal it caught (see
    # uvicorn.Server.capture_signals): SIGINT ends in exit code 0, SIGTERM kills the
    # process with the signal's default action
    assert code == (0 if signum == signal.SIGINT else -signum), stderr
    assert "Application shutdown complete" in stderr
    lowered = stderr.lower()
    for word in ("warning", "error", "traceback", "subinterpreter", "leak"):
        assert word not in lowered, stderr
