"""aiointerp.asgi: run a call until the ASGI client disconnects.

The ``receive`` callables here are real ASGI receive channels: the receiving end of
an anyio memory object stream whose sending end plays the server (it delivers
``http.request`` body chunks and ``http.disconnect``). The framework tests drive
real Starlette, FastAPI and Litestar applications through the ASGI protocol the
way a server does (lifespan, request, disconnect), since their test clients cannot
disconnect mid-request; Quart's test client can. Worker functions write a
handshake to a pipe once they run and record their ``finally`` in a file
(tests/_funcs_cancel.py): no sleeps.
"""

# No ``from __future__ import annotations``: FastAPI and Litestar read the
# annotations of the handlers defined inside the app factories below at run time,
# and string annotations could not see those functions' local names.

import functools
import importlib.util
import inspect
import json
import os
import pickle
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar, TypeVarTuple, Unpack

import _funcs_cancel as funcs
import _funcs_core as core
import anyio
import pytest
from _handshake import HANG, LONG_GRACE, pipe, text, wait_started
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import aiointerp
import aiointerp.asgi
from aiointerp import InterpreterPool, NotShareableError, RemoteTraceback
from aiointerp.asgi import ClientDisconnected, run_until_disconnect

pytestmark = pytest.mark.anyio

DISCONNECT = {"type": "http.disconnect"}
SPIN = "_funcs_cancel.spin"

Message = dict[str, Any]
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


# -- helpers ---------------------------------------------------------------------------


def interrupted(path: Path, times: int = 1) -> bool:
    """Did the worker function see :class:`aiointerp.Interrupted`, then its finally?"""
    return (
        re.fullmatch(r"(Interrupted:[^\n]*\nfinally\n)" * times, text(path)) is not None
    )


@contextmanager
def channel() -> Iterator[
    tuple[MemoryObjectSendStream[Message], MemoryObjectReceiveStream[Message]]
]:
    """The server's end and the application's end of one ASGI receive channel."""
    server, receive = anyio.create_memory_object_stream[Message](16)
    with server, receive:
        yield server, receive


def not_watched(receive: MemoryObjectReceiveStream[Message]) -> bool:
    """Nobody waits on the channel any more: the watching task is gone."""
    return receive.statistics().tasks_waiting_receive == 0


@pytest.fixture
async def pool() -> AsyncIterator[InterpreterPool]:
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
        yield pool


# -- the public surface ----------------------------------------------------------------


def test_public_names() -> None:
    assert aiointerp.asgi.__all__ == ["ClientDisconnected", "run_until_disconnect"]
    defined_here = {
        name
        for name, value in vars(aiointerp.asgi).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == "aiointerp.asgi"
    }
    assert defined_here == set(aiointerp.asgi.__all__)
    assert ClientDisconnected.__module__ == "aiointerp.asgi"
    assert run_until_disconnect.__module__ == "aiointerp.asgi"
    assert issubclass(ClientDisconnected, aiointerp.AiointerpError)
    assert ClientDisconnected.__doc__ is not None
    assert "run_until_disconnect" in ClientDisconnected.__doc__


def test_signature() -> None:
    params = inspect.signature(run_until_disconnect).parameters
    kinds = {name: (p.kind, p.default) for name, p in params.items()}
    empty = inspect.Parameter.empty
    assert kinds == {
        "receive": (inspect.Parameter.POSITIONAL_ONLY, empty),
        "func": (inspect.Parameter.POSITIONAL_ONLY, empty),
        "args": (inspect.Parameter.VAR_POSITIONAL, empty),
        "timeout": (inspect.Parameter.KEYWORD_ONLY, None),
        "pool": (inspect.Parameter.KEYWORD_ONLY, None),
    }


def test_client_disconnected_carries_what_and_why() -> None:
    exc = ClientDisconnected(SPIN, {"type": "websocket.disconnect", "code": 1001})
    assert exc.function == SPIN
    assert exc.message == {"type": "websocket.disconnect", "code": 1001}
    assert str(exc) == (
        "the client disconnected (websocket.disconnect) before _funcs_cancel.spin "
        "finished; the call was cancelled"
    )
    copy = pickle.loads(pickle.dumps(exc))
    assert (type(copy), copy.function, copy.message) == (
        ClientDisconnected,
        exc.function,
        exc.message,
    )


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        ("aiointerp", ["aiointerp.asgi"]),
        (
            "aiointerp.asgi",
            ["starlette", "fastapi", "litestar", "quart", "uvicorn", "httpx"],
        ),
    ],
)
def test_imports(module: str, must_not_load: list[str]) -> None:
    code = (
        f"import sys, {module}\n"
        f"loaded = sorted(set({must_not_load!r}) & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    source = Path(aiointerp.__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(source)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# -- outcomes of the call --------------------------------------------------------------


async def test_result_when_the_client_stays(pool: InterpreterPool) -> None:
    with channel() as (server, receive):
        result = await run_until_disconnect(
            receive.receive, funcs.checksum, 1000, 7, pool=pool
        )
        assert result == funcs.checksum(1000, 7)
        assert not_watched(receive)
        # the watcher is gone: a disconnect now stays for whoever reads next
        server.send_nowait(DISCONNECT)
        assert receive.receive_nowait() == DISCONNECT
    stats = pool.stats()
    assert (stats.completed, stats.cancelled, stats.busy) == (1, 0, 0)


async def test_default_pool_and_keyword_arguments() -> None:
    with channel() as (_server, receive):
        result = await run_until_disconnect(
            receive.receive, functools.partial(core.with_keywords, 1, c=30), 20
        )
    assert result == (1, 20, 30, 4)
    assert aiointerp.current_default_pool().stats().completed == 1
    await aiointerp.current_default_pool().aclose()


async def test_disconnect_interrupts_the_call(
    pool: InterpreterPool, tmp_path: Path
) -> None:
    path = tmp_path / "spin"
    with channel() as (server, receive), pipe() as (read_fd, write_fd):
        async with anyio.create_task_group() as tg:

            async def disconnect_when_started() -> None:
                await wait_started(read_fd)
                await server.send(DISCONNECT)

            tg.start_soon(disconnect_when_started)
            with pytest.raises(ClientDisconnected) as info:
                await run_until_disconnect(
                    receive.receive, funcs.spin, write_fd, str(path), pool=pool
                )
        assert not_watched(receive)
    assert interrupted(path)  # interrupted; the finally ran
    assert info.value.function == SPIN
    assert info.value.message == DISCONNECT
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    stats = pool.stats()
    assert (stats.cancelled, stats.abandoned, stats.busy) == (1, 0, 0)
    assert (stats.completed, stats.failed) == (0, 0)
    assert await pool.run_sync(funcs.checksum, 10, 1) == funcs.checksum(10, 1)


async def test_body_chunks_are_dropped_until_the_disconnect(
    pool: InterpreterPool, tmp_path: Path
) -> None:
    """``http.request`` messages (a body the handler did not read) do not stop it."""
    path = tmp_path / "spin"
    with channel() as (server, receive), pipe() as (read_fd, write_fd):
        server.send_nowait({"type": "http.request", "body": b"ab", "more_body": True})
        async with anyio.create_task_group() as tg:

            async def feed() -> None:
                await wait_started(read_fd)
                await server.send({"type": "http.request", "body": b"c"})
                await server.send({"type": "http.request", "body": b""})
                # every chunk consumed, the watcher waits again, the call still runs
                await anyio.wait_all_tasks_blocked()
                assert receive.statistics().current_buffer_used == 0
                assert pool.stats().busy == 1
                assert text(path) == ""
                await server.send(DISCONNECT)

            tg.start_soon(feed)
            with pytest.raises(ClientDisconnected):
                await run_until_disconnect(
                    receive.receive, funcs.spin, write_fd, str(path), pool=pool
                )
    assert interrupted(path)


async def test_websocket_disconnect(pool: InterpreterPool, tmp_path: Path) -> None:
    path = tmp_path / "spin"
    closed = {"type": "websocket.disconnect", "code": 1001, "reason": "going away"}
    with channel() as (server, receive), pipe() as (read_fd, write_fd):
        async with anyio.create_task_group() as tg:

            async def feed() -> None:
                await wait_started(read_fd)
                await server.send({"type": "websocket.receive", "text": "dropped"})
                await server.send(closed)

            tg.start_soon(feed)
            with pytest.raises(
                ClientDisconnected, match=r"\(websocket.disconnect\)"
            ) as info:
                await run_until_disconnect(
                    receive.receive, funcs.spin, write_fd, str(path), pool=pool
                )
    assert info.value.message == closed
    assert interrupted(path)


async def test_disconnect_while_queued_never_runs_the_call(
    pool: InterpreterPool, tmp_path: Path
) -> None:
    """The only worker is busy: the disconnected request leaves the queue."""
    path = tmp_path / "spin"
    with (
        channel() as (server, receive),
        pipe() as (held_r, held_w),
        pipe() as (release_r, release_w),
        pipe() as (read_fd, write_fd),
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run_sync, core.hold, 1, held_w, release_r)
            with anyio.fail_after(HANG):
                await anyio.wait_readable(held_r)
            try:

                async def disconnect_when_queued() -> None:
                    await anyio.wait_all_tasks_blocked()
                    assert pool.stats().waiting == 1
                    await server.send(DISCONNECT)

                tg.start_soon(disconnect_when_queued)
                with pytest.raises(ClientDisconnected):
                    await run_until_disconnect(
                        receive.receive, funcs.spin, write_fd, str(path), pool=pool
                    )
                assert pool.stats().waiting == 0
            finally:
                os.write(release_w, b"x")
        assert not funcs.readable(read_fd)  # the spin never started
    assert text(path) == ""
    stats = pool.stats()
    assert (stats.completed, stats.cancelled, stats.busy) == (1, 1, 0)


async def test_already_disconnected(pool: InterpreterPool, tmp_path: Path) -> None:
    """The client left before the handler got here: the call is cancelled at once."""
    with channel() as (server, receive), pipe() as (_read_fd, write_fd):
        server.send_nowait(DISCONNECT)
        with pytest.raises(ClientDisconnected):
            await run_until_disconnect(
                receive.receive, funcs.spin, write_fd, str(tmp_path / "s"), pool=pool
            )
    stats = pool.stats()
    assert (stats.cancelled, stats.abandoned, stats.busy) == (1, 0, 0)


async def test_timeout(pool: InterpreterPool, tmp_path: Path) -> None:
    path = tmp_path / "spin"
    with channel() as (_server, receive), pipe() as (read_fd, write_fd):
        with pytest.raises(TimeoutError, match=r"did not finish within 0\.5 s"):
            await run_until_disconnect(
                receive.receive,
                funcs.spin,
                write_fd,
                str(path),
                timeout=0.5,  # the timeout is what is under test
                pool=pool,
            )
        assert funcs.readable(read_fd)  # it ran
        assert not_watched(receive)
    assert interrupted(path)
    stats = pool.stats()
    assert (stats.timed_out, stats.cancelled, stats.busy) == (1, 0, 0)


async def test_negative_timeout(pool: InterpreterPool) -> None:
    with channel() as (_server, receive):
        with pytest.raises(ValueError, match="timeout must be >= 0"):
            await run_until_disconnect(
                receive.receive, funcs.checksum, 1, 1, timeout=-1, pool=pool
            )


async def test_exceptions_keep_their_type(pool: InterpreterPool) -> None:
    with channel() as (_server, receive):
        with pytest.raises(core.CustomError) as info:
            await run_until_disconnect(
                receive.receive, core.fail_with_custom_error, 7, pool=pool
            )
        assert (info.value.code, info.value.detail) == (7, "custom detail")
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert "fail_with_custom_error" in str(info.value.__cause__)
        assert not_watched(receive)

        # errors raised before a worker is taken are not wrapped either
        with pytest.raises(TypeError, match="is an async function"):
            await run_until_disconnect(
                receive.receive, core.coroutine_function, 1, pool=pool
            )
        with pytest.raises(NotShareableError):
            await run_until_disconnect(
                receive.receive, core.identity, threading.Lock(), pool=pool
            )
        assert not_watched(receive)
    assert pool.stats().failed == 1


async def test_caller_cancellation_is_not_a_disconnect(
    pool: InterpreterPool, tmp_path: Path
) -> None:
    path = tmp_path / "spin"
    raised: list[type[BaseException]] = []
    with channel() as (_server, receive), pipe() as (read_fd, write_fd):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_when_started() -> None:
                    await wait_started(read_fd)
                    scope.cancel()

                tg.start_soon(cancel_when_started)
                try:
                    await run_until_disconnect(
                        receive.receive, funcs.spin, write_fd, str(path), pool=pool
                    )
                except BaseException as exc:
                    raised.append(type(exc))
                    raise
        assert not_watched(receive)
    assert scope.cancelled_caught
    assert raised == [anyio.get_cancelled_exc_class()]
    assert interrupted(path)
    stats = pool.stats()
    assert (stats.cancelled, stats.abandoned, stats.busy) == (1, 0, 0)


async def test_caller_cancellation_wins_over_a_simultaneous_disconnect(
    pool: InterpreterPool, tmp_path: Path
) -> None:
    path = tmp_path / "spin"
    raised: list[type[BaseException]] = []
    with channel() as (server, receive), pipe() as (read_fd, write_fd):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def both_when_started() -> None:
                    await wait_started(read_fd)
                    server.send_nowait(DISCONNECT)  # no checkpoint in between
                    scope.cancel()

                tg.start_soon(both_when_started)
                try:
                    await run_until_disconnect(
                        receive.receive, funcs.spin, write_fd, str(path), pool=pool
                    )
                except BaseException as exc:
                    raised.append(type(exc))
                    raise
    assert scope.cancelled_caught
    assert raised == [anyio.get_cancelled_exc_class()]
    assert interrupted(path)


async def test_caller_cancelled_while_the_disconnected_call_stops(
    pool: InterpreterPool, tmp_path: Path
) -> None:
    """The disconnect came first; the caller is cancelled while the interrupted code
    is still stopping: the caller's cancellation is what propagates."""
    path = tmp_path / "swallow"
    raised: list[type[BaseException]] = []
    with (
        channel() as (server, receive),
        pipe() as (read_fd, write_fd),
        pipe() as (release_r, release_w),
    ):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def disconnect_then_cancel() -> None:
                    await wait_started(read_fd)
                    await server.send(DISCONNECT)
                    # the call was cancelled; it waits (up to cancel_grace) for the
                    # code, which swallows the interrupt until released
                    await anyio.wait_all_tasks_blocked()
                    assert pool.stats().busy == 1
                    scope.cancel()
                    os.write(release_w, b"x")  # now let the code return

                tg.start_soon(disconnect_then_cancel)
                try:
                    await run_until_disconnect(
                        receive.receive,
                        funcs.swallow_until_released,
                        write_fd,
                        release_r,
                        str(path),
                        pool=pool,
                    )
                except BaseException as exc:
                    raised.append(type(exc))
                    raise
    assert scope.cancelled_caught
    assert raised == [anyio.get_cancelled_exc_class()]
    # (what the file says depends on where the interrupt landed: not checked)
    stats = pool.stats()
    assert (stats.cancelled, stats.abandoned, stats.busy) == (1, 0, 0)


#: The asyncio backends of tests/conftest.py (uvloop where it is installed)
ASYNCIO_ONLY = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
        *(
            [pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]
            if importlib.util.find_spec("uvloop")
            else []
        ),
    ],
)


@ASYNCIO_ONLY
@pytest.mark.parametrize("disconnect_first", [False, True])
async def test_native_task_cancel_wins(
    pool: InterpreterPool, tmp_path: Path, disconnect_first: bool
) -> None:
    """``Task.cancel()``, as servers and frameworks that cancel handlers call it,
    with or without a disconnect at the same moment: CancelledError."""
    import asyncio

    path = tmp_path / "spin"
    with channel() as (server, receive), pipe() as (read_fd, write_fd):
        task = asyncio.ensure_future(
            run_until_disconnect(
                receive.receive, funcs.spin, write_fd, str(path), pool=pool
            )
        )
        await wait_started(read_fd)
        if disconnect_first:
            server.send_nowait(DISCONNECT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not_watched(receive)
    assert interrupted(path)


async def test_receive_raising_cancels_the_call(
    pool: InterpreterPool, tmp_path: Path
) -> None:
    """The channel breaks (here: the server end closes): the call stops, the error
    propagates as itself."""
    path = tmp_path / "spin"
    with channel() as (server, receive), pipe() as (read_fd, write_fd):
        async with anyio.create_task_group() as tg:

            async def close_when_started() -> None:
                await wait_started(read_fd)
                await server.aclose()

            tg.start_soon(close_when_started)
            with pytest.raises(anyio.EndOfStream):
                await run_until_disconnect(
                    receive.receive, funcs.spin, write_fd, str(path), pool=pool
                )
    assert interrupted(path)
    assert pool.stats().cancelled == 1


async def test_malformed_message(pool: InterpreterPool, tmp_path: Path) -> None:
    path = tmp_path / "spin"
    with channel() as (server, receive), pipe() as (read_fd, write_fd):
        async with anyio.create_task_group() as tg:

            async def send_garbage_when_started() -> None:
                await wait_started(read_fd)
                await server.send({"no": "type"})

            tg.start_soon(send_garbage_when_started)
            with pytest.raises(KeyError, match="type"):
                await run_until_disconnect(
                    receive.receive, funcs.spin, write_fd, str(path), pool=pool
                )
    assert interrupted(path)


async def test_sequential_calls_on_one_request(
    pool: InterpreterPool, tmp_path: Path
) -> None:
    with channel() as (server, receive), pipe() as (_read_fd, write_fd):
        for seed in range(3):
            assert await run_until_disconnect(
                receive.receive, funcs.checksum, 100, seed, pool=pool
            ) == funcs.checksum(100, seed)
            assert not_watched(receive)
        server.send_nowait(DISCONNECT)
        with pytest.raises(ClientDisconnected):
            await run_until_disconnect(
                receive.receive, funcs.spin, write_fd, str(tmp_path / "s"), pool=pool
            )
    assert pool.stats().completed == 3


async def test_concurrent_calls_of_one_request(tmp_path: Path) -> None:
    """The channel delivers the disconnect once (hypercorn does too): the first
    ClientDisconnected cancels the sibling call through the task group."""
    paths = [tmp_path / "first", tmp_path / "second"]
    caught: list[ClientDisconnected] = []
    async with InterpreterPool(2, cancel_grace=LONG_GRACE) as pool:
        with channel() as (server, receive), pipe() as (read_fd, write_fd):
            try:
                async with anyio.create_task_group() as tg:
                    for path in paths:
                        tg.start_soon(
                            functools.partial(
                                run_until_disconnect,
                                receive.receive,
                                funcs.spin,
                                write_fd,
                                str(path),
                                pool=pool,
                            )
                        )
                    await wait_started(read_fd)
                    await wait_started(read_fd)
                    await server.send(DISCONNECT)
            except* ClientDisconnected as group:
                caught.extend(group.exceptions)  # type: ignore[arg-type]
            assert not_watched(receive)
        assert [type(exc) for exc in caught] == [ClientDisconnected]
        assert all(interrupted(path) for path in paths)
        stats = pool.stats()
        assert (stats.cancelled, stats.abandoned, stats.busy) == (2, 0, 0)


# -- frameworks, driven through the ASGI protocol as a server drives them --------------

ASGIApp = Callable[[Message, Callable[[], Awaitable[Message]], Any], Awaitable[None]]


class Exchange:
    """One HTTP request/response of an application, with the server's controls."""

    def __init__(
        self, app: ASGIApp, state: dict[str, Any], method: str, target: str
    ) -> None:
        path, _, query = target.partition("?")
        self.app = app
        self.scope: Message = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"content-type", b"application/json"),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": state.copy(),
        }
        self.server, self.receive = anyio.create_memory_object_stream[Message](16)
        self.sent: list[Message] = []

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def run(self) -> None:
        with self.server, self.receive:
            await self.app(self.scope, self.receive.receive, self.send)

    async def body(self, *chunks: bytes) -> None:
        for i, chunk in enumerate(chunks):
            more = i < len(chunks) - 1
            await self.server.send(
                {"type": "http.request", "body": chunk, "more_body": more}
            )

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def response(self) -> Any:
        body = b"".join(m.get("body", b"") for m in self.sent if "body" in m)
        return json.loads(body)


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[Callable[[str, str], Exchange]]:
    """Run the application's lifespan around the block, as a server does."""
    state: dict[str, Any] = {}
    to_app, from_server = anyio.create_memory_object_stream[Message](4)
    to_server, from_app = anyio.create_memory_object_stream[Message](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    with to_app, from_server, to_server, from_app:
        async with anyio.create_task_group() as tg:
            tg.start_soon(app, scope, from_server.receive, to_server.send)
            with anyio.fail_after(HANG):
                await to_app.send({"type": "lifespan.startup"})
                assert (await from_app.receive())["type"] == "lifespan.startup.complete"
            try:
                yield functools.partial(Exchange, app, state)
            except BaseException:
                tg.cancel_scope.cancel()  # a failed test: no orderly shutdown
                raise
            with anyio.fail_after(HANG):
                await to_app.send({"type": "lifespan.shutdown"})
                done = await from_app.receive()
                assert done["type"] == "lifespan.shutdown.complete", done


async def check_app(app: ASGIApp, disconnects: list[str], tmp_path: Path) -> None:
    """The same checks for every framework's app, whose routes are

    - ``POST /checksum`` with a JSON body ``[n, seed]``: the checksum, computed by
      run_until_disconnect after the framework read the body;
    - ``GET /spin?fd=..&path=..``: spins until interrupted; ClientDisconnected is
      answered with status 499 (and recorded in ``disconnects``).
    """
    path = tmp_path / "spin"
    async with serve(app) as request:
        ok = request("POST", "/checksum")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ok.run)
            await ok.body(b"[1000,", b" 7]")  # two chunks: the framework reads both
        assert (ok.status, ok.response) == (200, {"checksum": funcs.checksum(1000, 7)})

        with pipe() as (read_fd, write_fd):
            gone = request("GET", f"/spin?fd={write_fd}&path={path}")
            async with anyio.create_task_group() as tg:
                tg.start_soon(gone.run)
                await gone.body(b"")
                await wait_started(read_fd)
                await gone.server.send(DISCONNECT)
        assert gone.status == 499
        assert disconnects == [SPIN]
        assert interrupted(path)

        # the body was read, then the client left: the disconnect still arrives
        with pipe() as (read_fd, write_fd):
            late = request("POST", f"/checksum?spin_fd={write_fd}&path={path}")
            async with anyio.create_task_group() as tg:
                tg.start_soon(late.run)
                await late.body(b"[1, 1]")
                await wait_started(read_fd)
                await late.server.send(DISCONNECT)
        assert late.status == 499
        assert disconnects == [SPIN, f"partial({SPIN})"]
        assert interrupted(path, times=2)


def spin_or_checksum(numbers: list[int], spin_fd: int | None, path: str) -> Any:
    """What ``POST /checksum`` runs: the checksum, or a spin when told to."""
    if spin_fd is not None:
        return functools.partial(funcs.spin, spin_fd, path)
    return functools.partial(funcs.checksum, *numbers)


def starlette_app(disconnects: list[str], middleware: bool) -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, InterpreterPool]]:
        async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
            yield {"pool": pool}

    async def checksum(request: Request) -> Response:
        numbers = await request.json()  # the body first: the watcher drops chunks
        spin_fd = request.query_params.get("spin_fd")
        call = spin_or_checksum(
            numbers,
            None if spin_fd is None else int(spin_fd),
            request.query_params.get("path", ""),
        )
        value = await run_until_disconnect(
            request.receive, call, pool=request.state.pool
        )
        return JSONResponse({"checksum": value})

    async def spin(request: Request) -> Response:
        fd, path = int(request.query_params["fd"]), request.query_params["path"]
        await run_until_disconnect(
            request.receive, funcs.spin, fd, path, pool=request.state.pool
        )
        raise AssertionError("unreachable: spin never returns")

    async def client_gone(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClientDisconnected)
        disconnects.append(exc.function)
        return Response(status_code=499)

    class PassThrough(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Any) -> Response:
            response: Response = await call_next(request)
            return response

    return Starlette(
        routes=[Route("/checksum", checksum, methods=["POST"]), Route("/spin", spin)],
        lifespan=lifespan,
        exception_handlers={ClientDisconnected: client_gone},
        middleware=[Middleware(PassThrough)] if middleware else [],
    )


@pytest.mark.parametrize("middleware", [False, True], ids=["plain", "basehttp"])
async def test_starlette(tmp_path: Path, middleware: bool) -> None:
    pytest.importorskip("starlette", reason="starlette is not installed")
    disconnects: list[str] = []
    await check_app(starlette_app(disconnects, middleware), disconnects, tmp_path)


async def test_starlette_websocket(tmp_path: Path) -> None:
    """``websocket.receive`` of Starlette's WebSocket: frames dropped, the close
    ends the call, and Starlette's own state knows the client is gone."""
    pytest.importorskip("starlette", reason="starlette is not installed")
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketState

    path = tmp_path / "spin"
    closes: list[dict[str, Any]] = []
    states: list[WebSocketState] = []
    async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:

        async def endpoint(websocket: WebSocket) -> None:
            await websocket.accept()
            fd = int(websocket.query_params["fd"])
            try:
                await run_until_disconnect(
                    websocket.receive, funcs.spin, fd, str(path), pool=pool
                )
            except ClientDisconnected as exc:
                closes.append(exc.message)
                states.append(websocket.client_state)

        app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
        sent: list[Message] = []
        with channel() as (server, receive), pipe() as (read_fd, write_fd):
            scope = {
                "type": "websocket",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "scheme": "ws",
                "path": "/ws",
                "raw_path": b"/ws",
                "query_string": f"fd={write_fd}".encode(),
                "root_path": "",
                "headers": [(b"host", b"testserver")],
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
                "subprotocols": [],
            }

            async def send(message: Message) -> None:
                sent.append(message)

            async with anyio.create_task_group() as tg:
                tg.start_soon(app, scope, receive.receive, send)
                await server.send({"type": "websocket.connect"})
                await wait_started(read_fd)
                await server.send({"type": "websocket.receive", "text": "dropped"})
                await server.send({"type": "websocket.disconnect", "code": 1001})
    assert [m["type"] for m in sent] == ["websocket.accept"]
    assert closes == [{"type": "websocket.disconnect", "code": 1001}]
    assert states == [WebSocketState.DISCONNECTED]
    assert interrupted(path)


def fastapi_app(disconnects: list[str]) -> ASGIApp:
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import Response

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, InterpreterPool]]:
        async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
            yield {"pool": pool}

    class Offload:
        """Dependency: run a call in the app's pool until the client leaves."""

        def __init__(self, request: Request) -> None:
            self.receive = request.receive
            self.pool: InterpreterPool = request.state.pool

        async def __call__(
            self, func: Callable[[Unpack[Ts]], T], /, *args: Unpack[Ts]
        ) -> T:
            return await run_until_disconnect(self.receive, func, *args, pool=self.pool)

    app = FastAPI(lifespan=lifespan)

    @app.post("/checksum")
    async def checksum(
        numbers: list[int],
        offload: Annotated[Offload, Depends()],
        spin_fd: int | None = None,
        path: str = "",
    ) -> dict[str, int]:
        return {"checksum": await offload(spin_or_checksum(numbers, spin_fd, path))}

    @app.get("/spin")
    async def spin(fd: int, path: str, offload: Annotated[Offload, Depends()]) -> None:
        await offload(funcs.spin, fd, path)

    @app.exception_handler(ClientDisconnected)
    async def client_gone(request: Request, exc: ClientDisconnected) -> Response:
        disconnects.append(exc.function)
        return Response(status_code=499)

    return app  # type: ignore[return-value]


async def test_fastapi(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="fastapi is not installed")
    disconnects: list[str] = []
    await check_app(fastapi_app(disconnects), disconnects, tmp_path)


def litestar_app(disconnects: list[str]) -> ASGIApp:
    from litestar import Litestar, Request, Response, get, post
    from litestar.enums import RequestEncodingType
    from litestar.params import Body

    @asynccontextmanager
    async def pool_lifespan(app: Litestar) -> AsyncIterator[None]:
        async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
            app.state.pool = pool
            yield

    @post("/checksum", status_code=200)
    async def checksum(
        request: Request[Any, Any, Any],
        data: Annotated[list[int], Body(media_type=RequestEncodingType.JSON)],
    ) -> dict[str, int]:
        query = request.query_params  # (declared query parameters vary by version)
        spin_fd = query.get("spin_fd")
        call = spin_or_checksum(
            data, None if spin_fd is None else int(spin_fd), query.get("path", "")
        )
        pool = request.app.state.pool
        return {
            "checksum": await run_until_disconnect(request.receive, call, pool=pool)
        }

    @get("/spin")
    async def spin(request: Request[Any, Any, Any]) -> None:
        fd, path = int(request.query_params["fd"]), request.query_params["path"]
        pool = request.app.state.pool
        await run_until_disconnect(request.receive, funcs.spin, fd, path, pool=pool)

    def client_gone(request: Request[Any, Any, Any], exc: Exception) -> Response[None]:
        assert isinstance(exc, ClientDisconnected)
        disconnects.append(exc.function)
        return Response(None, status_code=499)

    return Litestar(  # type: ignore[return-value]
        [checksum, spin],
        lifespan=[pool_lifespan],
        exception_handlers={ClientDisconnected: client_gone},
        logging_config=None,
    )


async def test_litestar(tmp_path: Path) -> None:
    pytest.importorskip("litestar", reason="litestar is not installed")
    disconnects: list[str] = []
    await check_app(litestar_app(disconnects), disconnects, tmp_path)


# Quart runs on asyncio only (quart-trio is a separate package), and it needs no
# run_until_disconnect: it cancels the handler's task itself when the client leaves,
# which interrupts the call like any cancellation does.


@ASYNCIO_ONLY
async def test_quart_cancels_the_handler_itself(tmp_path: Path) -> None:
    pytest.importorskip("quart", reason="quart is not installed")
    import asyncio

    from quart import Quart, request

    path = tmp_path / "spin"
    outcomes: list[str] = []
    app = Quart(__name__)

    @app.while_serving
    async def lifespan() -> AsyncIterator[None]:
        async with InterpreterPool(1, cancel_grace=LONG_GRACE) as pool:
            app.config["POOL"] = pool
            yield

    @app.get("/spin")
    async def spin() -> str:
        fd, path = int(request.args["fd"]), request.args["path"]
        try:
            await app.config["POOL"].run_sync(funcs.spin, fd, path)
        except asyncio.CancelledError:
            outcomes.append("cancelled")
            raise
        return "unreachable"

    @app.get("/checksum")
    async def checksum() -> dict[str, int]:
        pool = app.config["POOL"]
        return {"checksum": await pool.run_sync(funcs.checksum, 1000, 7)}

    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await client.get("/checksum")
        assert await response.get_json() == {"checksum": funcs.checksum(1000, 7)}
        with pipe() as (read_fd, write_fd):
            async with client.request(f"/spin?fd={write_fd}&path={path}") as conn:
                await conn.send_complete()
                await wait_started(read_fd)
                await conn.disconnect()
        assert outcomes == ["cancelled"]
        assert interrupted(path)
        stats = app.config["POOL"].stats()
        assert (stats.cancelled, stats.abandoned, stats.busy) == (1, 0, 0)
