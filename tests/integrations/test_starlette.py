"""aiointerp.starlette: the lifespan-managed pool and the Offloader, Starlette and FastAPI.

On a real uvicorn process on 127.0.0.1 (tests/_server.py) serving the apps of
tests/_starlette_apps.py, with one worker and ``max_waiting=0``: a call returns its
result; while the worker runs an endless call, the next request is shed at once
with a 503 and the event loop still answers; the endless call's client leaves and
its computation is interrupted; a worker that cannot start (a ``preload`` module
that is missing, or refuses subinterpreters) fails the application's startup and
uvicorn exits. In process (the lifespan entered as a server does): a new pool per startup, a
composed lifespan, a 499 for a departed client, a clear error without the lifespan.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Unpack

import _funcs_integrations
import _funcs_preload as f
import anyio
import httpx
import pytest
from _server import (
    ENDLESS,
    PRIMES,
    Server,
    assert_clean_log,
    launch,
    start_server,
    wait_for_stats,
)
from _server import stats as get_stats

pytest.importorskip("fastapi", reason="fastapi is not installed")

from examples._demo_work import count_primes
from starlette.exceptions import HTTPException
from starlette.requests import Request

import aiointerp
from aiointerp._seam import PoolOptionsAndKind
from aiointerp.asgi import ClientDisconnected
from aiointerp.starlette import Offloader, pool_lifespan

ROOT = Path(__file__).resolve().parents[2]
APPS = {
    "starlette": "tests._starlette_apps:starlette_app",
    "fastapi": "tests._starlette_apps:fastapi_app",
}
#: one worker and no waiting room: a second request while one runs is shed
SHEDDING = {"AIOINTERP_MAX_WAITING": "0"}
#: the exit status of uvicorn when the application's startup failed
STARTUP_FAILURE = 3


# -- on uvicorn ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(APPS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    logs = tmp_path_factory.mktemp(f"uvicorn-{request.param}")
    started = start_server(APPS[request.param], logs, workers=1, env=SHEDDING)
    yield started
    code, log = started.stop()
    assert code == 0, log
    assert_clean_log(log)  # shed requests and departed clients are not errors


@pytest.mark.anyio
async def test_calls_return_their_results(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for n, primes in PRIMES.items():
            response = await client.get("/work", params={"n": n})
            assert response.status_code == 200, response.text
            assert response.json() == {"n": n, "primes": primes}
        assert (await get_stats(client))["created"] == 1  # the preloaded one


@pytest.mark.anyio
async def test_shed_load_then_disconnect_stops_the_work(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        before = await get_stats(client)
        async with anyio.create_task_group() as tg:

            async def endless() -> None:
                async with httpx.AsyncClient(base_url=server.url, timeout=None) as c:
                    await c.get("/work", params={"n": ENDLESS})
                raise AssertionError("the endless request returned")

            tg.start_soon(endless)
            await wait_for_stats(client, lambda s: s["busy"] == 1)  # the one worker
            shed = await client.get("/work", params={"n": 10})
            assert shed.status_code == 503, shed.text
            assert shed.headers["retry-after"] == "1"
            health = await client.get("/health")
            assert health.status_code == 200
            assert (await get_stats(client))["busy"] == 1  # shedding did not touch it
            tg.cancel_scope.cancel()  # the client leaves
        after = await wait_for_stats(
            client,
            lambda s: s["busy"] == 0 and s["cancelled"] == before["cancelled"] + 1,
        )
        assert after["abandoned"] == before["abandoned"]  # interrupted in time
        assert after["completed"] == before["completed"]
        # the interrupted worker retires and a replacement starts at once, unasked
        # (max_waiting=0 would shed a call that waited for it)
        await wait_for_stats(client, lambda s: (s["idle"], s["workers"]) == (1, 1))
        ok = await client.get("/work", params={"n": 10_000})  # the pool serves on
        assert ok.json() == {"n": 10_000, "primes": PRIMES[10_000]}


@pytest.mark.anyio
async def test_a_call_past_its_timeout_gets_504(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        before = await wait_for_stats(client, lambda s: s["busy"] == 0)
        late = await client.get("/work", params={"n": ENDLESS, "timeout": 0.2})
        assert late.status_code == 504, late.text
        # Starlette answers in plain text, FastAPI in JSON
        assert "the computation did not finish in time" in late.text
        after = await wait_for_stats(client, lambda s: s["busy"] == 0)
        assert after["timed_out"] == before["timed_out"] + 1
        assert after["abandoned"] == before["abandoned"]  # interrupted in time
        # it retires, and its replacement starts at once
        await wait_for_stats(client, lambda s: (s["idle"], s["workers"]) == (1, 1))
        ok = await client.get("/work", params={"n": 10_000, "timeout": 60})
        assert ok.json() == {"n": 10_000, "primes": PRIMES[10_000]}
    # the log has no error for it: checked when the server stops (the fixture)


def run_failing_startup(app: str, logs: Path, preload: str) -> tuple[int, str]:
    """Serve *app* with a pool that preloads *preload*: uvicorn must exit."""
    process, stderr = launch(app, logs, workers=2, env={"AIOINTERP_PRELOAD": preload})
    try:
        code = process.wait(timeout=60)  # a hang guard: it exits within seconds
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return code, stderr.read_text()


@pytest.mark.parametrize("framework", sorted(APPS))
def test_a_missing_preload_module_fails_the_startup(
    framework: str, tmp_path: Path
) -> None:
    preload = "examples._demo_work,_aiointerp_tests_missing"
    code, log = run_failing_startup(APPS[framework], tmp_path, preload)
    assert code == STARTUP_FAILURE, log
    assert "Application startup failed" in log
    assert "BrokenWorkerError" in log
    assert "could not import '_aiointerp_tests_missing' (preload)" in log
    assert "Uvicorn running" not in log  # it never served
    assert log.count("No module named '_aiointerp_tests_missing'") <= 3  # no retries


def test_a_module_refusing_interpreters_fails_the_startup(tmp_path: Path) -> None:
    code, log = run_failing_startup(
        APPS["fastapi"], tmp_path, "examples._demo_work,tests._preload_refused"
    )
    assert code == STARTUP_FAILURE, log
    assert "could not import 'tests._preload_refused' (preload)" in log
    assert "does not support loading in subinterpreters" in log


# -- in process: the lifespan entered as a server does, a request built around it ----


async def client_stays() -> dict[str, Any]:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


def make_request(state: dict[str, Any], receive: Any = client_stays) -> Request:
    """A request of an app whose lifespan state is *state*, as a server builds it."""
    return Request({"type": "http", "state": dict(state)}, receive)


@pytest.mark.anyio
async def test_each_startup_opens_a_new_pool() -> None:
    lifespan = pool_lifespan(1)
    pools = []
    for _ in range(2):  # a test client per test: the app starts again
        async with lifespan(None) as state:
            offload = Offloader(make_request(state))
            assert await offload.pool.run_sync(os.getpid) == os.getpid()
            pools.append(offload.pool)
    assert pools[0] is not pools[1]
    with pytest.raises(aiointerp.PoolClosedError):  # each closed at its shutdown
        await pools[0].run_sync(os.getpid)


@pytest.mark.anyio
async def test_composed_with_the_apps_own_lifespan() -> None:
    pool = pool_lifespan(1, preload=["colorsys"])

    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[dict[str, Any]]:
        async with pool(app) as state:
            yield {**state, "greeting": "hello"}

    async with lifespan(None) as state:
        request = make_request(state)
        assert request.state.greeting == "hello"
        assert await Offloader(request)(f.loaded, "colorsys") is True


@pytest.mark.anyio
async def test_a_departed_client_gets_499() -> None:
    server, receive = anyio.create_memory_object_stream[dict[str, Any]](4)
    errors: list[HTTPException] = []
    async with pool_lifespan(1)(None) as state:
        offload = Offloader(make_request(state, receive.receive))

        async def call() -> None:
            with pytest.raises(HTTPException) as info:
                await offload(count_primes, ENDLESS)
            errors.append(info.value)

        with server, receive:
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await wait_until(lambda: offload.pool.stats().busy == 1)
                await server.send({"type": "http.disconnect"})
        stats = offload.pool.stats()
    assert errors[0].status_code == 499
    assert type(errors[0].__cause__) is ClientDisconnected
    assert (stats.busy, stats.cancelled, stats.abandoned) == (0, 1, 0)


@pytest.mark.anyio
@pytest.mark.parametrize("chained", [False, True], ids=["plain", "chained"])
async def test_only_the_pools_timeout_becomes_a_504(chained: bool) -> None:
    async with pool_lifespan(1)(None) as state:
        offload = Offloader(make_request(state))
        # the function's own TimeoutError (a slow upstream) is its error, not a 504
        with pytest.raises(TimeoutError, match="upstream did not answer") as own:
            await offload(_funcs_integrations.time_out_upstream, chained)
        if chained:
            assert type(own.value.__context__) is ConnectionError
        with pytest.raises(HTTPException) as info:
            await offload(count_primes, ENDLESS, timeout=0.05)
        stats = offload.pool.stats()
    assert info.value.status_code == 504
    assert type(info.value.__cause__) is TimeoutError
    assert (stats.failed, stats.timed_out, stats.abandoned) == (1, 1, 0)


async def wait_until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(30):  # hang guard
        while not predicate():  # noqa: ASYNC110 - the pool sets no event for it
            await anyio.sleep(0.005)


def test_every_pool_option_passes_through() -> None:
    # every option of InterpreterPool but max_workers, with the same types
    options = typing.get_type_hints(PoolOptionsAndKind)
    pool = typing.get_type_hints(aiointerp.InterpreterPool.__init__)
    del pool["return"]
    assert sorted(["max_workers", *options]) == sorted(pool)
    assert (
        inspect.signature(pool_lifespan).parameters["pool_options"].annotation
        == Unpack[PoolOptionsAndKind]
    )
    assert list(inspect.signature(aiointerp.InterpreterPool).parameters) == list(pool)
    for name, hint in options.items():
        assert hint == pool[name], name


@pytest.mark.anyio
async def test_iterable_options_serve_every_startup() -> None:
    # iterators: the check when the app is built must not use them up
    lifespan = pool_lifespan(
        1,
        preload=iter(["colorsys"]),
        initializer=f.init_note_modules,
        initargs=iter(["colorsys"]),
        forward_output=False,
    )
    for _ in range(2):  # a test client per test: the app starts again
        async with lifespan(None) as state:
            offload = Offloader(make_request(state))
            assert await offload(f.seen_by_initializer) == {"colorsys": True}
            assert offload.pool._forward_output is False


def test_offloader_without_the_lifespan_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="pool_lifespan"):
        Offloader(make_request({}))


def test_options_are_checked_when_the_app_is_built() -> None:
    with pytest.raises(ValueError, match="min_idle"):
        pool_lifespan(1, min_idle=2)
    with pytest.raises(TypeError, match="preload"):
        pool_lifespan(preload="myapp.cpu")


def test_import_aiointerp_does_not_import_it() -> None:
    code = (
        "import sys, aiointerp, aiointerp.asgi\n"
        "aiointerp.InterpreterPool, aiointerp.offload\n"
        "assert 'aiointerp.starlette' not in sys.modules\n"
        "assert 'starlette' not in sys.modules\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(Path(aiointerp.__file__).parent.parent)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr
