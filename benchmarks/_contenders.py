"""The contenders: one way each to run a sync function off the event loop.

Two suites: :func:`all_contenders` (the default suite: aiointerp's interpreters
against the other ways to run code off the loop) and :func:`process_contenders`
(``InterpreterPool(kind="process")`` against the process pools).

Every contender opens as an async context manager yielding ``call(func, *args)``,
created and closed per measurement, inside the event loop run that measures it,
so nothing is shared between contenders or scenarios. Pools are sized to
``workers`` (the CPU count unless a scenario says otherwise), except
``anyio.to_thread``, which keeps anyio's default of 40 threads (the GIL serialises
them anyway).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_interpreter
import anyio.to_process
import anyio.to_thread

import aiointerp

from ._raw import RawPool

Call = Callable[..., Awaitable[Any]]
Opener = Callable[[int, int], AbstractAsyncContextManager[Call]]

AIOINTERP = "aiointerp"
TO_INTERPRETER = "anyio.to_interpreter"
TO_THREAD = "anyio.to_thread"
TO_PROCESS = "anyio.to_process"
IPE = "InterpreterPoolExecutor"
TRIO_PARALLEL = "trio_parallel"
RAW = "raw lower bound"
#: the process suite: its baseline, and the peers only it runs
AIOINTERP_PROCESS = "aiointerp process"
PROCESS_POOL_EXECUTOR = "ProcessPoolExecutor"
PEBBLE = "pebble"

BOTH = ("asyncio", "trio")


@dataclass(frozen=True)
class Contender:
    name: str
    #: what runs the call: "interpreter", "thread", "process"
    kind: str
    backends: tuple[str, ...]
    open: Opener
    #: why it cannot run on this Python, or None
    unavailable: str | None = None

    def supports(self, backend: str) -> bool:
        return self.unavailable is None and backend in self.backends


@asynccontextmanager
async def _aiointerp(workers: int, min_idle: int) -> AsyncIterator[Call]:
    async with aiointerp.InterpreterPool(workers, min_idle=min_idle) as pool:
        yield pool.run_sync


@asynccontextmanager
async def _to_interpreter(workers: int, min_idle: int) -> AsyncIterator[Call]:
    # anyio keeps its idle interpreters per event loop run (and destroys them at
    # process exit): a fresh run gets a fresh "pool" with its own default limiter
    anyio.to_interpreter.current_default_interpreter_limiter().total_tokens = workers
    yield anyio.to_interpreter.run_sync


@asynccontextmanager
async def _to_thread(workers: int, min_idle: int) -> AsyncIterator[Call]:
    yield anyio.to_thread.run_sync


@asynccontextmanager
async def _to_process(workers: int, min_idle: int) -> AsyncIterator[Call]:
    # worker processes belong to the event loop run: killed when it ends
    anyio.to_process.current_default_process_limiter().total_tokens = workers
    yield anyio.to_process.run_sync


@asynccontextmanager
async def _interpreter_pool_executor(
    workers: int, min_idle: int
) -> AsyncIterator[Call]:
    import asyncio
    from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    executor = InterpreterPoolExecutor(max_workers=workers)

    async def call(func: Callable[..., Any], *args: Any) -> Any:
        return await loop.run_in_executor(executor, functools.partial(func, *args))

    try:
        yield call
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(executor.shutdown)


@asynccontextmanager
async def _trio_parallel(workers: int, min_idle: int) -> AsyncIterator[Call]:
    import trio
    import trio_parallel

    limiter = trio.CapacityLimiter(workers)
    async with trio_parallel.open_worker_context() as ctx:

        async def call(func: Callable[..., Any], *args: Any) -> Any:
            return await ctx.run_sync(func, *args, limiter=limiter)

        yield call


@asynccontextmanager
async def _aiointerp_process(workers: int, min_idle: int) -> AsyncIterator[Call]:
    async with aiointerp.InterpreterPool(
        workers, min_idle=min_idle, kind="process"
    ) as pool:
        yield pool.run_sync


@asynccontextmanager
async def _to_process_cancellable(workers: int, min_idle: int) -> AsyncIterator[Call]:
    # cancellable=True: a cancelled call kills its worker process (SIGKILL)
    anyio.to_process.current_default_process_limiter().total_tokens = workers

    async def call(func: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_process.run_sync(func, *args, cancellable=True)

    yield call


def _spawn_context() -> Any:
    # the process pools of the stdlib and pebble start their workers as aiointerp
    # and anyio.to_process do: a fresh interpreter (no fork of a threaded host)
    import multiprocessing

    return multiprocessing.get_context("spawn")


@asynccontextmanager
async def _process_pool_executor(workers: int, min_idle: int) -> AsyncIterator[Call]:
    import asyncio
    from concurrent.futures import ProcessPoolExecutor

    loop = asyncio.get_running_loop()
    executor = ProcessPoolExecutor(workers, mp_context=_spawn_context())

    async def call(func: Callable[..., Any], *args: Any) -> Any:
        return await loop.run_in_executor(executor, func, *args)

    try:
        yield call
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(executor.shutdown)


@asynccontextmanager
async def _pebble(workers: int, min_idle: int) -> AsyncIterator[Call]:
    import asyncio

    import pebble

    pool = pebble.ProcessPool(max_workers=workers, context=_spawn_context())

    async def call(func: Callable[..., Any], *args: Any) -> Any:
        # cancelling the asyncio future cancels pebble's, which stops its worker
        return await asyncio.wrap_future(pool.schedule(func, args=args))

    try:
        yield call
    finally:
        pool.close()  # type: ignore[no-untyped-call]
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(pool.join)


@asynccontextmanager
async def _trio_parallel_killing(workers: int, min_idle: int) -> AsyncIterator[Call]:
    import trio
    import trio_parallel

    limiter = trio.CapacityLimiter(workers)
    async with trio_parallel.open_worker_context() as ctx:

        async def call(func: Callable[..., Any], *args: Any) -> Any:
            return await ctx.run_sync(func, *args, limiter=limiter, kill_on_cancel=True)

        yield call


@asynccontextmanager
async def _raw(workers: int, min_idle: int) -> AsyncIterator[Call]:
    async with RawPool(workers) as pool:
        yield pool.call


def _missing(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    return None


def all_contenders() -> list[Contender]:
    ipe_missing = None if sys.version_info >= (3, 14) else "needs Python 3.14 (PEP 734)"
    return [
        Contender(AIOINTERP, "interpreter", BOTH, _aiointerp),
        Contender(TO_INTERPRETER, "interpreter", BOTH, _to_interpreter),
        Contender(
            IPE, "interpreter", ("asyncio",), _interpreter_pool_executor, ipe_missing
        ),
        Contender(RAW, "interpreter", BOTH, _raw),
        Contender(TO_THREAD, "thread", BOTH, _to_thread),
        Contender(TO_PROCESS, "process", BOTH, _to_process),
        Contender(
            TRIO_PARALLEL,
            "process",
            ("trio",),
            _trio_parallel,
            _missing("trio_parallel"),
        ),
    ]


def process_contenders() -> list[Contender]:
    """The process suite: ``kind="process"`` and the process pools.

    Every one of them can be cancelled: anyio.to_process with ``cancellable=True``
    and trio_parallel with ``kill_on_cancel=True`` kill the worker, pebble
    terminates it; ProcessPoolExecutor releases its caller and lets the code run.
    """
    return [
        Contender(AIOINTERP_PROCESS, "process", BOTH, _aiointerp_process),
        Contender(TO_PROCESS, "process", BOTH, _to_process_cancellable),
        Contender(
            PROCESS_POOL_EXECUTOR, "process", ("asyncio",), _process_pool_executor
        ),
        Contender(PEBBLE, "process", ("asyncio",), _pebble, _missing("pebble")),
        Contender(
            TRIO_PARALLEL,
            "process",
            ("trio",),
            _trio_parallel_killing,
            _missing("trio_parallel"),
        ),
        # a reference for the memory scenario (and aiointerp's own interpreters)
        Contender(AIOINTERP, "interpreter", BOTH, _aiointerp),
    ]
