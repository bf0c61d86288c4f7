"""The web suite: a real web app under mixed load, and the same mix without a web stack.

``python -m benchmarks --suite web`` runs two scenarios:

* ``web``: the FastAPI app of :mod:`benchmarks._web_app` on uvicorn, a child process
  listening on 127.0.0.1 (on a socket this process bound, so the port is free and
  nothing races for it), once per offloading strategy, the same number of workers
  for each. After a warm-up (a few requests of each endpoint, then one whole load,
  not measured), a load generator in this process sends a mix of requests at a
  fixed concurrency over keep-alive connections, while a prober on its own connection asks for
  ``/health`` every 10 ms. Per strategy: requests per second, request latency,
  ``/health`` latency, the pool's worker starts during the load (``/stats``), the
  server's RSS (alone, and with every process of its session: the worker processes)
  before and after the load. The strategies are measured in turns, ``web_passes``
  times.
* ``bursts``: the same mix of calls started at once on ``InterpreterPool(kind="auto")``
  and ``kind="process"`` pools, open side by side in one event loop run, on each
  backend and pool size: wall time and worker starts of each burst.

The load generator speaks HTTP/1.1 itself (:class:`_Connection`): an HTTP client
library costs the load generator more CPU per request than the server's framework
does, on a machine whose 2 CPUs the server and its workers need.

Every process of the server's session gets ``OPENBLAS_NUM_THREADS=1`` (and the OMP
and MKL equivalents), as do the burst pools' workers: each worker uses one CPU, so
"2 workers" means the same for every strategy.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import anyio
import anyio.abc
import anyio.to_thread

import aiointerp

from . import _work
from ._contenders import (
    BOTH,
    PROCESS_POOL_EXECUTOR,
    TO_THREAD,
    Call,
    Contender,
    _aiointerp,
    _process_pool_executor,
)
from ._memory import rss
from ._scenarios import ROOT, Row, Runner, Settings, describe_error
from ._stats import fmt_bytes, fmt_time, summarize

WEB_AUTO = 'aiointerp kind="auto"'
WEB_PROCESS = 'aiointerp kind="process"'
WEB_INTERPRETER = 'aiointerp kind="interpreter"'
#: the contender every ratio of the suite divides by
BASELINE = WEB_PROCESS
#: what each contender is called by ``python -m benchmarks._web_app --strategy``
STRATEGY = {
    WEB_AUTO: "auto",
    WEB_PROCESS: "process",
    WEB_INTERPRETER: "interpreter",
    TO_THREAD: "to_thread",
    PROCESS_POOL_EXECUTOR: "executor",
}
#: the loads: every CPU endpoint (a pure-Python request in 4), or /primes alone
MIXED = "mixed"
PURE = "pure-Python only"
#: which loads each contender serves (kind="interpreter" cannot serve the mix;
#: kind="process" serves the pure load too, for the comparison)
LOADS = {
    WEB_AUTO: (MIXED,),
    WEB_PROCESS: (MIXED, PURE),
    WEB_INTERPRETER: (PURE,),
    TO_THREAD: (MIXED,),
    PROCESS_POOL_EXECUTOR: (MIXED,),
}
PURE_PATH = "/primes"
LIBRARY_PATHS = ("/numpy", "/pandas", "/pydantic", "/pillow")
#: the /health prober's period
PROBE_INTERVAL = 0.010
#: bounds on the server's start (imports, pool) and stop (graceful, then SIGKILL)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: one thread per BLAS / OpenMP pool in the server and the workers
ONE_THREAD = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
#: the warning aiointerp gives on CPython 3.13.0 (the server's log stays readable)
IGNORE_3130 = "ignore:CPython 3.13.0 has a defect:RuntimeWarning"
#: the seed of the order of the mixed requests (the same order for everyone)
SEED = 20261203


# -- the contenders --------------------------------------------------------------------


@asynccontextmanager
async def _aiointerp_kind(
    kind: str, workers: int, min_idle: int
) -> AsyncIterator[Call]:
    async with aiointerp.InterpreterPool(workers, min_idle=min_idle, kind=kind) as pool:
        yield pool.run_sync


@asynccontextmanager
async def _to_thread_limited(workers: int, min_idle: int) -> AsyncIterator[Call]:
    # as the web app does: as many threads as the other contenders have workers
    yield functools.partial(
        anyio.to_thread.run_sync, limiter=anyio.CapacityLimiter(workers)
    )


def web_contenders() -> list[Contender]:
    """The web suite's contenders: the strategies of :mod:`benchmarks._web_app`.

    Their openers are the same pools outside the app (the bursts use those of
    ``kind="auto"`` and ``kind="process"``); in the ``web`` scenario each runs in
    uvicorn's event loop, whatever the run's backends.
    """
    return [
        Contender(
            WEB_PROCESS, "process", BOTH, functools.partial(_aiointerp_kind, "process")
        ),
        Contender(WEB_AUTO, "auto", BOTH, functools.partial(_aiointerp_kind, "auto")),
        Contender(WEB_INTERPRETER, "interpreter", ("asyncio",), _aiointerp),
        Contender(TO_THREAD, "thread", ("asyncio",), _to_thread_limited),
        Contender(
            PROCESS_POOL_EXECUTOR, "process", ("asyncio",), _process_pool_executor
        ),
    ]


# -- what the suite needs --------------------------------------------------------------


def _missing(*modules: str) -> str | None:
    absent = [name for name in modules if importlib.util.find_spec(name) is None]
    if absent:
        return (
            f"{', '.join(absent)} not installed "
            "(pip install -r requirements-dev.txt -r benchmarks/requirements.txt)"
        )
    return None


def _web_missing() -> str | None:
    return _missing("fastapi", "uvicorn", "numpy", "PIL", "pydantic")


def have_pandas() -> bool:
    return importlib.util.find_spec("pandas") is not None


def _skipped(runner: Runner, name: str, title: str, why: str) -> dict[str, Any]:
    runner.log(f"  [{name}] skipped: {why}")
    return {"title": title, "skipped": why, "rows": []}


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Set :data:`ONE_THREAD` in this process's environment (workers inherit it)."""
    saved = {name: os.environ.get(name) for name in ONE_THREAD}
    os.environ.update(ONE_THREAD)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _server_env(scale: float = 1.0) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ONE_THREAD)
    env["AIOINTERP_WEB_SCALE"] = repr(scale)  # benchmarks._web_app.ENDPOINTS
    paths = [str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env["PYTHONWARNINGS"] = ",".join(
        filter(None, [IGNORE_3130, env.get("PYTHONWARNINGS", "")])
    )
    return env


# -- processes, RSS --------------------------------------------------------------------


def _stat_fields(pid: int | str) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (state, ppid, pgrp, session...)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def session_members(sid: int) -> list[int]:
    """Live processes (not zombies) of session *sid*: a server and its workers."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(entry)) is not None:
            if fields[0] != "Z" and fields[3] == str(sid):
                members.append(int(entry))
    return members


def session_rss(sid: int) -> int:
    """RSS of every process of session *sid* together (shared pages counted in each)."""
    total = 0
    for pid in session_members(sid):
        try:
            total += rss(pid)
        except OSError:  # gone meanwhile
            continue
    return total


# -- a small HTTP/1.1 client -----------------------------------------------------------


class _Connection:
    """One keep-alive HTTP/1.1 connection: ``GET`` requests, one at a time.

    Reads responses with a ``Content-Length`` (what uvicorn sends for these
    endpoints) and reconnects when the server closes the connection.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.stream: anyio.abc.SocketStream | None = None
        self.buffer = bytearray()

    async def __aenter__(self) -> _Connection:
        await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.stream is not None:
            await self.stream.aclose()
            self.stream = None

    async def _connect(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()
        self.stream = await anyio.connect_tcp("127.0.0.1", self.port)
        self.buffer.clear()

    async def _fill(self) -> None:
        assert self.stream is not None
        self.buffer += await self.stream.receive()

    async def get(self, path: str) -> tuple[int, bytes]:
        """``GET path``: the status code and the body."""
        if self.stream is None:
            await self._connect()
        assert self.stream is not None
        request = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n\r\n"
        await self.stream.send(request.encode())
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise RuntimeError(f"GET {path}: a response without Content-Length: {head}")
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            await self._fill()
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        if headers.get("connection", "").lower() == "close":
            await self.stream.aclose()
            self.stream = None
        return status, body


async def get_json(port: int, path: str) -> Any:
    """One ``GET`` on a new connection; the JSON body of a 200 response."""
    async with _Connection(port) as connection:
        status, body = await connection.get(path)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    return json.loads(body)


# -- the server ------------------------------------------------------------------------


def _tail(log: IO[bytes], lines: int = 15) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])


@dataclass
class Server:
    """A running server of the web app: where it listens, what it is."""

    port: int
    pid: int
    log: IO[bytes]
    #: filled in when it has stopped
    stop_s: float | None = None
    killed: bool = False
    orphans: int = 0

    def rss(self) -> tuple[int, int]:
        """The RSS of the server process, and of its whole session (its workers)."""
        return rss(self.pid), session_rss(self.pid)


async def _wait_ready(process: anyio.abc.Process, port: int, log: IO[bytes]) -> None:
    """Until ``/health`` answers (the socket listens already: the request waits in
    its backlog until uvicorn accepts it, after the lifespan's startup)."""

    async def died() -> None:
        code = await process.wait()
        raise RuntimeError(
            f"the server exited ({code}) before it answered:\n{_tail(log)}"
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(died)
        with anyio.fail_after(START_TIMEOUT):
            await get_json(port, "/health")
        tg.cancel_scope.cancel()


async def _exited(pid: int) -> None:
    """Until process *pid* (not a child of ours) has exited: its pidfd is readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await anyio.wait_readable(fd)
    finally:
        os.close(fd)


async def _stop(process: anyio.abc.Process, server: Server) -> None:
    """SIGINT (uvicorn's graceful shutdown: the lifespan closes the pool), SIGKILL
    if it is not gone after :data:`STOP_TIMEOUT`; then kill what its session left."""
    start = time.perf_counter()
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
        with anyio.move_on_after(STOP_TIMEOUT):
            await process.wait()
    if process.returncode is None:
        server.killed = True
        os.killpg(server.pid, signal.SIGKILL)
        await process.wait()
    server.stop_s = time.perf_counter() - start
    # multiprocessing's resource tracker leaves when it reads the end of its pipe:
    # wait (bounded) for what is left of the session to exit
    with anyio.move_on_after(5):
        for pid in session_members(server.pid):
            await _exited(pid)
    left = session_members(server.pid)
    if left:
        server.orphans = len(left)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    await process.aclose()


@asynccontextmanager
async def serve(
    strategy: str, workers: int, log: IO[bytes], scale: float = 1.0
) -> AsyncIterator[Server]:
    """Start the web app with *strategy* in a child process; stop it at the end."""
    from ._web_app import LAUNCH

    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        port = listener.getsockname()[1]
        fd = listener.fileno()
        command = [sys.executable, "-c", LAUNCH]
        command += ["--strategy", strategy, "--workers", str(workers), "--fd", str(fd)]
        command += ["--exit-on-eof"]  # its stdin: a pipe that ends if we die
        process = await anyio.open_process(
            command,
            cwd=ROOT,
            env=_server_env(scale),
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            pass_fds=(fd,),
            start_new_session=True,  # its workers too: found (and killed) by session
        )
    finally:
        listener.close()
    server = Server(port, process.pid, log)
    try:
        await _wait_ready(process, port, log)
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process, server)


# -- the load --------------------------------------------------------------------------


def mixed_paths(requests: int, library_paths: tuple[str, ...]) -> list[str]:
    """A pure-Python request in 4, the others spread evenly over *library_paths*,
    in a shuffled order (the same for every contender)."""
    pure = round(requests / 4)
    paths = [PURE_PATH] * pure
    paths += [library_paths[i % len(library_paths)] for i in range(requests - pure)]
    random.Random(SEED).shuffle(paths)
    return paths


async def _warm_up(port: int, paths: list[str], count: int, load: list[str]) -> None:
    """*count* concurrent requests of each path in turn, then the first requests of
    *load* at once (as many as connections); every one must succeed."""

    async def one(path: str) -> None:
        async with _Connection(port) as connection:
            status, body = await connection.get(path)
        if status != 200:
            raise RuntimeError(f"warm-up GET {path}: {status} {body[:300]!r}")

    for batch in [*([path] * count for path in paths), load]:
        async with anyio.create_task_group() as tg:
            for path in batch:
                tg.start_soon(one, path)


async def run_load(port: int, paths: list[str], concurrency: int) -> dict[str, Any]:
    """Send *paths* over *concurrency* connections while a prober asks for /health."""
    pending = iter(paths)
    latencies: dict[str, list[float]] = {}
    health: list[float] = []
    errors: list[str] = []
    finished = anyio.Event()

    async def client(connection: _Connection) -> None:
        for path in pending:  # one iterator for all: each path is sent once
            start = time.perf_counter()
            status, body = await connection.get(path)
            latencies.setdefault(path, []).append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"{path}: {status} {body[:200]!r}")

    async def prober(connection: _Connection) -> None:
        next_at = time.perf_counter()
        while not finished.is_set():
            start = time.perf_counter()
            status, body = await connection.get("/health")
            health.append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"/health: {status} {body[:200]!r}")
            next_at = max(next_at + PROBE_INTERVAL, time.perf_counter())
            await anyio.sleep(max(0.0, next_at - time.perf_counter()))

    connections = [_Connection(port) for _ in range(concurrency + 1)]
    try:
        for connection in connections:  # connected before the clock starts
            await connection.__aenter__()
        async with anyio.create_task_group() as tg:
            tg.start_soon(prober, connections[0])
            start = time.perf_counter()
            async with anyio.create_task_group() as clients:
                for connection in connections[1:]:
                    clients.start_soon(client, connection)
            wall = time.perf_counter() - start
            finished.set()
    finally:
        for connection in connections:
            await connection.__aexit__(None, None, None)
    every = [x for samples in latencies.values() for x in samples]
    return {
        "requests": len(paths),
        "concurrency": concurrency,
        "wall": wall,
        "requests_per_s": len(paths) / wall,
        **summarize(every),
        "health": summarize(health),
        "endpoints": {
            path: {
                k: v
                for k, v in summarize(samples).items()
                if k in ("n", "median", "p99")
            }
            for path, samples in sorted(latencies.items())
        },
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


async def _serve_and_load(
    strategy: str,
    s: Settings,
    loads: list[tuple[str, list[str]]],
    warm_paths: list[str],
    log: IO[bytes],
) -> list[Row]:
    """One server of *strategy*: warm up, then each load in turn, with its stats."""
    rows: list[Row] = []
    async with serve(strategy, s.web_workers, log, s.web_scale) as server:
        info = await get_json(server.port, "/stats")
        started_rss = server.rss()
        first_load = loads[0][1][: s.web_concurrency]
        await _warm_up(
            server.port, warm_paths, s.web_workers * s.web_warmup, first_load
        )
        # then the first load once, unmeasured: a server's steady state is what is
        # measured (the pool's mix of workers follows the load it has been serving)
        unmeasured = await run_load(server.port, loads[0][1], s.web_concurrency)
        if unmeasured["errors"]:
            raise RuntimeError(f"warm-up load: {unmeasured['errors'][:3]}")
        for variant, paths in loads:
            before = await get_json(server.port, "/stats")
            rss_before = server.rss()
            result = await run_load(server.port, paths, s.web_concurrency)
            after = await get_json(server.port, "/stats")
            rss_after = server.rss()
            row: Row = {"variant": variant, **result}
            row["loop"] = info["loop"]
            row["rss_started"], row["session_rss_started"] = started_rss
            row["rss_before"], row["session_rss_before"] = rss_before
            row["rss_after"], row["session_rss_after"] = rss_after
            if "pool" in after:
                pool_before, pool_after = before["pool"], after["pool"]
                row["starts"] = pool_after["created"] - pool_before["created"]
                row["retired_during_load"] = (
                    pool_after["retired"] - pool_before["retired"]
                )
                row["starts_before_load"] = pool_before["created"]
                row["workers_after"] = {
                    "interpreters": pool_after["interpreters"],
                    "processes": pool_after["processes"],
                }
            rows.append(row)
    for row in rows:
        row["server_pid"] = server.pid
        row["stop_s"] = server.stop_s
        row["killed"] = server.killed
        row["orphans"] = server.orphans
    return rows


def _row_line(row: Row) -> str:
    text = (
        f"{row['requests_per_s']:7.1f} req/s  p50 {fmt_time(row['median'])}  "
        f"p99 {fmt_time(row['p99'])}  /health p99 {fmt_time(row['health'].get('p99'))}"
        f" max {fmt_time(row['health'].get('max'))}"
    )
    if "starts" in row:
        text += f"  starts {row['starts']}"
    text += (
        f"  RSS {fmt_bytes(row['rss_before'])} -> {fmt_bytes(row['rss_after'])}"
        f" (session {fmt_bytes(row['session_rss_before'])} -> "
        f"{fmt_bytes(row['session_rss_after'])})"
    )
    if row["errors"]:
        text += f"  {row['errors']} ERRORS: {row['first_error']}"
    return text


def sequential_times(paths: tuple[str, ...], scale: float = 1.0) -> dict[str, float]:
    """Each endpoint's function run alone, in a fresh process with the server's
    environment (one BLAS thread): the median of a few calls after one."""
    code = (
        "import json, statistics, sys, time\n"
        "from benchmarks._web_app import ENDPOINTS\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    func, arg = ENDPOINTS[path]\n"
        "    func(arg)\n"
        "    times = []\n"
        "    for _ in range(7):\n"
        "        start = time.perf_counter(); func(arg)\n"
        "        times.append(time.perf_counter() - start)\n"
        "    out[path] = statistics.median(times)\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *paths],
        cwd=ROOT,
        env=_server_env(scale),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    times: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return times


def _median_pass(group: list[Row]) -> Row:
    """The pass whose throughput is the median of the contender's passes."""
    good = [row for row in group if "error" not in row]
    if not good:
        return group[0]
    ordered = sorted(good, key=lambda row: row["requests_per_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["passes"] = len(group)
    chosen["pass_requests_per_s"] = [row["requests_per_s"] for row in good]
    chosen["pass_health_p99"] = [row["health"].get("p99") for row in good]
    if "starts" in chosen:
        chosen["pass_starts"] = [row.get("starts") for row in good]
    return chosen


def _web_ratios(rows: list[Row], by_pass: dict[tuple[str, str], list[Row]]) -> None:
    """Ratios against kind="process" (same load): throughput (higher: better than
    process), paired over the passes, and /health p99 (a cost)."""
    base = {row["variant"]: row for row in rows if row["contender"] == BASELINE}
    for row in rows:
        ours = base.get(row["variant"])
        if ours is None or "error" in row or "error" in ours:
            continue
        row["throughput_vs_process"] = row["requests_per_s"] / ours["requests_per_s"]
        if ours["health"].get("p99") and row["health"].get("p99") is not None:
            row["health_p99_vs_process"] = row["health"]["p99"] / ours["health"]["p99"]
        theirs_passes = by_pass.get((row["contender"], row["variant"]), [])
        ours_passes = by_pass.get((BASELINE, row["variant"]), [])
        pairs = [
            (t["requests_per_s"], o["requests_per_s"])
            for t, o in zip(theirs_passes, ours_passes, strict=False)
            if "error" not in t and "error" not in o
        ]
        if pairs:
            row["paired_throughput_vs_process"] = statistics.median(
                t / o for t, o in pairs
            )


def web(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    title = "A FastAPI app on uvicorn under a mixed load"
    why = _web_missing()
    if why:
        return _skipped(runner, "web", title, why)
    library_paths = tuple(
        path for path in LIBRARY_PATHS if path != "/pandas" or have_pandas()
    )
    notes = []
    if "/pandas" not in library_paths:
        notes.append(
            "pandas is not installed: the mix leaves /pandas out "
            "(pip install -r benchmarks/requirements.txt)"
        )
        runner.log(f"  [web] {notes[-1]}")
    times = sequential_times((*library_paths, PURE_PATH), s.web_scale)
    runner.log(
        "  [web] one call alone: "
        + ", ".join(f"{path} {fmt_time(t)}" for path, t in times.items())
    )
    mixed = mixed_paths(s.web_requests, library_paths)
    pure = [PURE_PATH] * s.web_requests
    load_paths = {MIXED: mixed, PURE: pure}
    contenders = [
        c for c in runner.contenders if c.name in STRATEGY and c.unavailable is None
    ]
    by_pass: dict[tuple[str, str], list[Row]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for number in range(s.web_passes):
            label = "web" if s.web_passes == 1 else f"web {number + 1}/{s.web_passes}"
            for contender in contenders:
                loads = [
                    (variant, load_paths[variant]) for variant in LOADS[contender.name]
                ]
                warm = (
                    [PURE_PATH]
                    if loads == [(PURE, pure)]
                    else [*library_paths, PURE_PATH]
                )
                log_path = Path(directory) / f"{STRATEGY[contender.name]}-{number}.log"
                start = time.perf_counter()
                with log_path.open("w+b") as log:
                    try:
                        got = runner.run(
                            "asyncio",
                            _serve_and_load,
                            STRATEGY[contender.name],
                            s,
                            loads,
                            warm,
                            log,
                        )
                    except Exception as exc:
                        got = [
                            {"variant": variant, "error": describe_error(exc)}
                            for variant, _ in loads
                        ]
                        tail = _tail(log)
                        if tail:
                            got[0]["server_log"] = tail
                for row in got:
                    row["contender"] = contender.name
                    row["backend"] = "uvicorn"
                    by_pass.setdefault((contender.name, row["variant"]), []).append(row)
                    text = (
                        f"error: {row['error']}" if "error" in row else _row_line(row)
                    )
                    runner.log(
                        f"  [{label}] {contender.name:<28} {row['variant']:<16} {text}"
                    )
                runner.log(
                    f"  [{label}] {contender.name:<28} done in "
                    f"{time.perf_counter() - start:.1f} s"
                )
    rows = [_median_pass(group) for group in by_pass.values()]
    _web_ratios(rows, by_pass)
    loop = next((row["loop"] for row in rows if "loop" in row), "?")
    description = (
        f"The FastAPI app of `benchmarks/_web_app.py` on uvicorn ({loop} event loop), "
        f"a child process on 127.0.0.1, with {s.web_workers} workers for every "
        "contender (`anyio.to_thread`: a `CapacityLimiter` of as many threads). "
        f"Load: {s.web_requests} requests at a concurrency of {s.web_concurrency} "
        "(keep-alive connections, opened before the clock starts), after a warm-up "
        f"of {s.web_workers * s.web_warmup} concurrent requests of each endpoint in "
        f"turn, then of the load's first {s.web_concurrency} requests at once, "
        "then of the whole first load, unmeasured (what is measured is a server "
        "in its steady state: the mix of an auto pool's workers follows the load "
        "it has been serving). "
        "`mixed`: a request in 4 to `/primes` (pure Python), the others spread "
        "over "
        + ", ".join(f"`{p}`" for p in library_paths)
        + " (one call alone: "
        + ", ".join(f"`{p}` {fmt_time(t)}" for p, t in times.items())
        + ", in a process with one BLAS thread, as the server has). "
        '`kind="interpreter"` '
        "cannot serve them (numpy, pandas, pydantic and Pillow refuse "
        "subinterpreters): it serves the `pure-Python only` load (every request to "
        '`/primes`), which `kind="process"` serves too for the comparison. '
        "While the load runs, a prober on its own connection asks for `/health` "
        f"every {PROBE_INTERVAL * 1e3:g} ms (its latency is the server's event loop's "
        "responsiveness). Starts: workers the pool created during the load "
        "(`PoolStats.created` by `/stats`, aiointerp only). RSS: the server process; "
        "`session`: with every process of its session (the worker processes). "
        f"The contenders are measured in turns, {s.web_passes} time(s); each row is "
        "the pass of median throughput; `paired`: the median over the passes of the "
        'throughput over `kind="process"`\'s in the same pass.'
    )
    if notes:
        description += " " + " ".join(f"Note: {note}." for note in notes)
    return {
        "title": title,
        "description": description,
        "sequential_s": times,
        "library_paths": list(library_paths),
        "rows": rows,
    }


# -- the bursts ------------------------------------------------------------------------


def burst_calls(
    calls: int, scale: float = 1.0
) -> list[tuple[Callable[[int], Any], int]]:
    """A pure-Python call in 4, the others numpy, in a shuffled order."""
    from . import _web_work

    pure = round(calls / 4)
    plan: list[tuple[Callable[[int], Any], int]] = [
        (_work.count_primes, max(2, int(_web_work.PRIMES_N * scale)))
    ] * pure
    size = max(2, int(_web_work.NUMPY_SIZE * scale))
    plan += [(_web_work.numpy_work, size)] * (calls - pure)
    random.Random(SEED).shuffle(plan)
    return plan


async def _bursts(s: Settings, workers: int, contenders: list[Contender]) -> list[Row]:
    """Both pools open side by side; bursts in turns, the order swapped every rep."""
    plan = burst_calls(s.burst_calls, s.web_scale)
    expected = {}
    walls: dict[str, list[float]] = {c.name: [] for c in contenders}
    starts: dict[str, list[int]] = {c.name: [] for c in contenders}
    ratios: list[float] = []
    async with (
        contenders[0].open(workers, 0) as first,
        contenders[1].open(workers, 0) as second,
    ):
        calls = {contenders[0].name: first, contenders[1].name: second}
        # the openers yield the pools' bound run_sync
        pools = {name: call.__self__ for name, call in calls.items()}  # type: ignore[attr-defined]
        for call in calls.values():  # one warm-up call of each function
            for func, arg in dict(plan).items():
                expected[func] = await call(func, arg)
        for call in calls.values():  # and a burst: every worker starts, imports

            async def warm(func: Callable[[int], Any], arg: int) -> None:
                await call(func, arg)  # noqa: B023

            async with anyio.create_task_group() as tg:
                for func, arg in plan:
                    tg.start_soon(warm, func, arg)
        for rep in range(s.burst_reps):
            order = list(calls) if rep % 2 == 0 else list(reversed(calls))
            for name in order:
                call = calls[name]
                results: list[tuple[Callable[[int], Any], Any]] = []

                async def one(func: Callable[[int], Any], arg: int) -> None:
                    results.append((func, await call(func, arg)))  # noqa: B023

                before = pools[name].stats().created
                start = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for func, arg in plan:
                        tg.start_soon(one, func, arg)
                walls[name].append(time.perf_counter() - start)
                starts[name].append(pools[name].stats().created - before)
                wrong = [(f.__name__, r) for f, r in results if r != expected[f]]
                if wrong or len(results) != len(plan):
                    raise AssertionError(f"{name}: wrong results {wrong[:3]}")
            ratios.append(walls[WEB_AUTO][-1] / walls[WEB_PROCESS][-1])
        finals = {name: pools[name].stats() for name in calls}
    rows = []
    for name in calls:
        row: Row = {
            "contender": name,
            "variant": f"{workers} workers",
            "workers": workers,
            **summarize(walls[name]),
            "starts": sum(starts[name]),
            "starts_per_burst": starts[name],
            "max_starts": max(starts[name]),
            "interpreters_after": finals[name].interpreters,
            "processes_after": finals[name].processes,
        }
        if name == WEB_AUTO:
            row["paired_ratio"] = statistics.median(ratios)
        rows.append(row)
    return rows


def bursts(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    title = "Mixed bursts without a web stack"
    why = _missing("numpy", "PIL", "pydantic")
    if why:
        return _skipped(runner, "bursts", title, why)
    by_name = {c.name: c for c in runner.contenders}
    contenders = (
        [by_name[WEB_AUTO], by_name[WEB_PROCESS]] if WEB_AUTO in by_name else []
    )
    if not contenders:
        return _skipped(
            runner, "bursts", title, f"{WEB_AUTO} is not among the contenders"
        )
    rows: list[Row] = []
    with _one_blas_thread():
        for backend in runner.backends:
            for workers in s.burst_workers:
                start = time.perf_counter()
                try:
                    got: list[Row] = runner.run(
                        backend, _bursts, s, workers, contenders
                    )
                except Exception as exc:
                    got = [
                        {
                            "contender": c.name,
                            "variant": f"{workers} workers",
                            "workers": workers,
                            "error": describe_error(exc),
                        }
                        for c in contenders
                    ]
                for row in got:
                    row["backend"] = backend
                    if "error" in row:
                        text = f"error: {row['error']}"
                    else:
                        text = (
                            f"wall p50 {fmt_time(row['median'])}  starts per burst "
                            f"{row['starts_per_burst']}  after: "
                            f"{row['interpreters_after']} interpreters, "
                            f"{row['processes_after']} processes"
                        )
                        if "paired_ratio" in row:
                            text += f"  (paired ratio {row['paired_ratio']:.2f}x)"
                    runner.log(
                        f"  [bursts] {backend:<7} {row['contender']:<24} "
                        f"{row['variant']:<10} {text}"
                    )
                runner.log(
                    f"  [bursts] {backend:<7} {workers} workers done in "
                    f"{time.perf_counter() - start:.1f} s"
                )
                rows += got
    return {
        "title": title,
        "description": (
            f"{s.burst_calls} calls started at once (a `count_primes` in 4, the others "
            "`numpy_work`: the functions of `/primes` and `/numpy`, from "
            '`benchmarks/_work.py` and `benchmarks/_web_work.py`) on a `kind="auto"` '
            'and a `kind="process"` pool of the same size, open side by side in one '
            "event loop run, after one warm-up call of each function and one "
            "unmeasured burst on each pool (every worker started, numpy imported); "
            f"{s.burst_reps} burst(s) per pool, in turns (the order swapped every "
            "burst). Wall time of a burst; starts: workers created during the bursts "
            "(`PoolStats.created`); `paired`: the median over the bursts of auto's "
            "wall time over process's in the same turn. Ratio: wall time vs "
            '`kind="process"`.'
        ),
        "cost": "median",
        "rows": rows,
    }


WEB_SCENARIOS: dict[str, Callable[[Runner], dict[str, Any]]] = {
    "web": web,
    "bursts": bursts,
}
