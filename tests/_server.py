"""A real uvicorn process serving an example app on the loopback interface.

Shared by the tests of examples/web_app.py (Starlette) and examples/fastapi_app.py.
The server starts and stops inside the test that uses it, bounded in time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Known prime counts: pi(10**4), pi(2*10**4), pi(3*10**4), pi(5*10**4)
PRIMES = {10_000: 1229, 20_000: 2262, 30_000: 3245, 50_000: 5133}
#: Far too long to finish while a test waits: only cancellation ends it.
ENDLESS = 10**10
#: The pool's one warning on CPython 3.13.0 (as in pyproject's pytest filterwarnings):
#: tested in tests/host/test_profilers.py, kept out of the server logs checked here.
DEFECT_WARNING = (
    "ignore:CPython 3.13.0 has a defect that aborts the process:RuntimeWarning"
)
#: What a clean server log never contains (the log of a whole test module).
BAD_LOG_WORDS = ("warning", "error", "traceback", "exception", "subinterpreter", "leak")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    stderr: Path

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str]:
        """Send ``signum`` (a graceful shutdown), wait; return (exit code, log)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:  # hang guard
            self.process.kill()
            self.process.wait()
            raise
        return code, self.stderr.read_text()


#: How uvicorn announces the port it got (it binds port 0: no race with others)
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def launch(
    app: str, logs: Path, *, workers: int = 2, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``uvicorn app`` with a pool of ``workers`` (and *env*); return it, its log."""
    logs.mkdir(parents=True, exist_ok=True)
    index = len(list(logs.glob("uvicorn-*.err")))
    stderr = logs / f"uvicorn-{index}.err"
    with stderr.open("wb") as err, (logs / f"uvicorn-{index}.out").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-W",
                DEFECT_WARNING,
                "-m",
                "uvicorn",
                app,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-access-log",
            ],
            cwd=ROOT,
            env={**os.environ, "AIOINTERP_WORKERS": str(workers), **(env or {})},
            stdout=out,
            stderr=err,
        )
    return process, stderr


def start_server(
    app: str, logs: Path, *, workers: int = 2, env: Mapping[str, str] | None = None
) -> Server:
    """Start ``uvicorn app`` with a pool of ``workers`` interpreters; wait for /health.

    uvicorn binds a free port itself (``--port 0``) and logs it: another process
    cannot take the port between our choice and uvicorn's bind.
    """
    process, stderr = launch(app, logs, workers=workers, env=env)
    server: Server | None = None
    for _ in range(600):  # bounded: up to ~60 s on a loaded machine
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited early:\n{stderr.read_text()}")
        if server is None and (found := LISTENING.search(stderr.read_text())):
            server = Server(process, f"http://127.0.0.1:{found[1]}", stderr)
        if server is not None:
            try:
                if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
        time.sleep(0.1)  # waiting for another process to listen: polling, bounded
    Server(process, "", stderr).stop(signal.SIGKILL)
    raise RuntimeError(f"uvicorn did not answer /health:\n{stderr.read_text()}")


def server_fixture(app: str) -> Any:
    """A module-scoped pytest fixture: *app* served by uvicorn; its log must be clean."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
        started = start_server(app, tmp_path_factory.mktemp("uvicorn"))
        yield started
        code, log = started.stop()
        assert code == 0, log
        assert_clean_log(log)  # disconnected clients are not errors

    return server


def assert_clean_log(log: str) -> None:
    lowered = log.lower()
    for word in BAD_LOG_WORDS:
        assert word not in lowered, log


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


async def check_concurrent_cpu_requests(server: Server, bad_status: int) -> None:
    """Every PRIMES request at once: each answer right; a bad ``n`` gets bad_status."""
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
    assert bad.status_code == bad_status


async def check_health_and_disconnect(server: Server) -> dict[str, Any]:
    """Both interpreters busy with endless work: /health answers; then the clients
    leave and both computations are interrupted. Returns the /stats before it all
    and after, as ``{"before": ..., "after": ...}``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        before = await stats(client)
        assert before["busy"] == 0
        async with anyio.create_task_group() as tg:

            async def endless() -> None:
                async with httpx.AsyncClient(base_url=server.url, timeout=None) as c:
                    await c.get("/work", params={"n": ENDLESS})
                raise AssertionError("the endless request returned")

            for _ in range(2):
                tg.start_soon(endless)
            # handshake: both computations provably run in the server...
            await wait_for_stats(client, lambda s: s["busy"] == 2)
            # ...and the event loop still answers while they do
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
    return {"before": before, "after": after}
