"""aiointerp.dask on real Dask clusters (LocalCluster on 127.0.0.1, threads and processes).

Each test starts its own cluster (tens of milliseconds with threads, under a second
with worker processes) and closes it; the autouse leak check then also covers the
interpreters of in-process workers, and :func:`cluster` checks that worker processes
are gone. Clients: ``Client(asynchronous=True)`` on asyncio and uvloop; on trio the
synchronous ``Client`` (its own event loop in a thread), called through
``anyio.to_thread``. Handshakes go through FIFOs (tests/_funcs_dask.py); timeouts
only guard against hangs, except where a timeout is the behaviour under test.
"""

from __future__ import annotations

import functools
import inspect
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import typing
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Unpack, cast

import _funcs_dask as funcs
import anyio
import anyio.to_thread
import dask
import dask.config
import distributed
import psutil
import pytest
from conftest import child_env
from dask.utils import key_split
from distributed import Client, LocalCluster

import aiointerp
from aiointerp import NotShareableError, PoolClosedError, RemoteTraceback
from aiointerp._dask import _compat as compat
from aiointerp._seam import PoolOptions
from aiointerp.dask import DaskPool, InterpreterPlugin, in_interpreter

pytestmark = [
    pytest.mark.anyio,
    # the pool's once-per-process warning about this Python's known defects
    pytest.mark.filterwarnings("ignore:CPython 3.13.0 has a defect:RuntimeWarning"),
]

HANG = 60.0
KINDS = [pytest.param(False, id="threads"), pytest.param(True, id="processes")]


# -- clusters and clients ------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _resource_tracker() -> None:
    """Worker processes start multiprocessing's resource tracker once per process; its
    pipe and process live as long as this one: not a leak of the first test."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def start_cluster(
    processes: bool, n_workers: int = 1, threads: int = 1, **kwargs: Any
) -> LocalCluster:
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads,
        processes=processes,
        host="127.0.0.1",
        protocol="tcp",
        dashboard_address=":0",  # any free port: 8787 may be taken
        **kwargs,
    )


@contextmanager
def no_child_left() -> Iterator[None]:
    """Fail if a process started inside outlives the block (worker processes)."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    left = [
        p
        for p in me.children(recursive=True)
        if p.pid not in before and not _is_resource_tracker(p)
    ]
    _, alive = psutil.wait_procs(left, timeout=10)
    assert not alive, f"processes left behind: {alive}"


def _is_resource_tracker(process: psutil.Process) -> bool:
    """multiprocessing's helper, started once and kept for the life of this process."""
    try:
        return "resource_tracker" in " ".join(process.cmdline())
    except psutil.Error:
        return False


class Dask:
    """A cluster and the client this test's event loop can use."""

    def __init__(self, cluster: LocalCluster, client: Client) -> None:
        self.cluster = cluster
        self.client = client

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A client method: awaited (asynchronous client), or in a thread."""
        if self.client.asynchronous:
            return await method(*args, **kwargs)
        return await anyio.to_thread.run_sync(
            functools.partial(method, *args, **kwargs)
        )

    async def result(self, future: distributed.Future) -> Any:
        with anyio.fail_after(HANG):
            return await self.call(future.result)

    async def gather(self, futures: list[distributed.Future]) -> list[Any]:
        with anyio.fail_after(HANG):
            return await self.call(self.client.gather, futures)  # type: ignore[no-any-return]

    async def register(self, plugin: InterpreterPlugin | None = None) -> None:
        await self.call(self.client.register_plugin, plugin or InterpreterPlugin())

    async def run(self, probe: Callable[..., Any]) -> list[Any]:
        """``probe(dask_worker)`` on every worker, in the order of their addresses."""
        results = await self.call(self.client.run, probe)
        return [results[address] for address in sorted(results)]

    async def close_cluster(self) -> None:
        await anyio.to_thread.run_sync(self.cluster.close)


@asynccontextmanager
async def dask_cluster(
    processes: bool, *, plugin: InterpreterPlugin | None = None, **kwargs: Any
) -> AsyncIterator[Dask]:
    """A LocalCluster and a client; the plugin registered unless ``plugin`` is False."""
    with no_child_left():
        cluster = await anyio.to_thread.run_sync(
            functools.partial(start_cluster, processes, **kwargs)
        )
        try:
            async with _client(cluster) as client:
                dask_ = Dask(cluster, client)
                if plugin is not False:
                    await dask_.register(plugin)
                yield dask_
        finally:
            await anyio.to_thread.run_sync(cluster.close)


@asynccontextmanager
async def _client(cluster: LocalCluster) -> AsyncIterator[Client]:
    if _library() == "asyncio":
        async with Client(
            cluster.scheduler_address, asynchronous=True, set_as_default=False
        ) as client:
            yield client
        return
    client = await anyio.to_thread.run_sync(
        functools.partial(Client, cluster.scheduler_address, set_as_default=False)
    )
    try:
        yield client
    finally:
        await anyio.to_thread.run_sync(client.close)


def _library() -> str:
    import sniffio

    return sniffio.current_async_library()


@contextmanager
def fifos(tmp_path: Path) -> Iterator[tuple[str, str, int, int]]:
    """Two FIFOs for spin(): (started, stopped) paths and their read ends."""
    started, stopped = str(tmp_path / "started"), str(tmp_path / "stopped")
    os.mkfifo(started)
    os.mkfifo(stopped)
    r_started = os.open(started, os.O_RDONLY | os.O_NONBLOCK)
    r_stopped = os.open(stopped, os.O_RDONLY | os.O_NONBLOCK)
    try:
        yield started, stopped, r_started, r_stopped
    finally:
        os.close(r_started)
        os.close(r_stopped)


async def wait_for(fd: int, text: str) -> None:
    """Wait until ``text`` arrives on a FIFO's read end."""
    data = b""
    with anyio.fail_after(HANG):
        while text.encode() not in data:
            await anyio.wait_readable(fd)
            try:
                chunk = os.read(fd, 64)
            except BlockingIOError:
                continue
            if not chunk:  # the writer closed; wait for the next one
                await anyio.sleep(0.001)  # hang guard polling, not synchronisation
            data += chunk


# -- in_interpreter: what Dask sees ------------------------------------------------------


def test_import_without_distributed_says_what_to_install() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["distributed"] = None  # as if it were not installed
        try:
            import aiointerp.dask
        except ModuleNotFoundError as exc:
            print(exc.name)
            print(exc)
            print(type(exc.__cause__).__name__)
        """
    )
    process = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    name, message, cause = process.stdout.splitlines()
    assert name == "distributed"
    assert message.startswith("aiointerp.dask needs Dask's distributed package")
    assert "pip install distributed" in message
    assert cause == "ModuleNotFoundError"


def test_in_interpreter_is_an_async_function_with_the_users_name() -> None:
    task = in_interpreter(funcs.add)
    assert inspect.iscoroutinefunction(task)
    assert distributed.utils.iscoroutinefunction(task)
    assert (task.__name__, task.__qualname__, task.__module__) == (
        "add",
        "add",
        "_funcs_dask",
    )
    assert dask.utils.funcname(task) == "add"
    assert not hasattr(task, "__wrapped__")  # it would be pickled along


def test_in_interpreter_checks_its_arguments() -> None:
    async def coro() -> None:
        pass

    with pytest.raises(TypeError, match="async function"):
        in_interpreter(coro)
    with pytest.raises(TypeError, match="not callable"):
        in_interpreter(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        in_interpreter(funcs.add, timeout=-1)


async def test_in_interpreter_outside_a_worker() -> None:
    with pytest.raises(RuntimeError, match="hand it to a Dask client"):
        await in_interpreter(funcs.add)(1, 2)


def test_unpicklable_function_is_refused_at_once() -> None:
    lock = threading.Lock()
    with pytest.raises(NotShareableError, match="cannot send"):
        in_interpreter(functools.partial(funcs.add, lock))


# -- results and errors --------------------------------------------------------------------


@pytest.mark.parametrize("processes", KINDS)
@pytest.mark.parametrize("with_plugin", [True, False], ids=["plugin", "default-pool"])
async def test_submit_map_and_delayed(processes: bool, with_plugin: bool) -> None:
    async with dask_cluster(
        processes, threads=2, plugin=None if with_plugin else False
    ) as d:
        future = d.client.submit(in_interpreter(funcs.add), 1, 2)
        assert key_split(future.key) == "add"  # the dashboard's name
        assert await d.result(future) == 3
        futures = d.client.map(in_interpreter(funcs.count_primes), [0, 100], [100, 200])
        assert await d.gather(futures) == [25, 21]
        lazy = dask.delayed(in_interpreter(funcs.add))(dask.delayed(funcs.add)(1, 2), 4)
        assert await d.result(d.client.compute(lazy)) == 7
        keyword = functools.partial(funcs.count_primes, stop=100)
        assert await d.result(d.client.submit(in_interpreter(keyword), 0)) == 25
        if with_plugin:
            (stats,) = await d.run(funcs.pool_stats)
            assert stats == (0, 5, 0, 0, 0)  # busy, completed, failed, cancelled...


@pytest.mark.parametrize("processes", KINDS)
async def test_exception_round_trips_with_remote_traceback(processes: bool) -> None:
    async with dask_cluster(processes) as d:
        future = d.client.submit(in_interpreter(funcs.fail), "boom")
        with pytest.raises(funcs.Boom, match="boom") as info:
            await d.result(future)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "raise Boom(message)" in cause.text
        assert "_funcs_dask.py" in cause.text


async def test_worker_that_cannot_load_the_function_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with dask_cluster(True) as d:
        # a module only this process can import: the worker processes started before
        name = f"only_here_{uuid.uuid4().hex}"
        (tmp_path / f"{name}.py").write_text("def f(x):\n    return x\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        module = __import__(name)
        future = d.client.submit(in_interpreter(module.f), 1)
        with pytest.raises(ModuleNotFoundError) as info:
            await d.result(future)
        assert "the Dask worker process" in "".join(info.value.__notes__)
        assert "could not load" in "".join(info.value.__notes__)


async def test_interpreter_that_cannot_load_the_function_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # importable by the worker process, not inside an isolated interpreter
    name = f"needs_psutil_{uuid.uuid4().hex}"
    # (f uses psutil: sent by value, it still needs it)
    (tmp_path / f"{name}.py").write_text(
        "import psutil\n\ndef f(x):\n    return psutil.__name__, x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    async with dask_cluster(False) as d:
        future = d.client.submit(in_interpreter(module.f), 1)
        with pytest.raises(ImportError, match="subinterpreters") as info:
            await d.result(future)
        message = str(info.value)
        assert message.startswith(f"loading {name}.f imports psutil.")
        assert "also when sent by value" in message
        assert "kind='auto'" in message


async def test_timeout_raises_timeout_error_through_dask(tmp_path: Path) -> None:
    async with dask_cluster(False) as d:
        # warm: the interpreter exists and imported the module, so the call starts
        # well within its timeout (which counts from the start of the task)
        assert await d.result(d.client.submit(in_interpreter(funcs.add), 1, 2)) == 3
        with fifos(tmp_path) as (started, stopped, r_started, r_stopped):
            task = in_interpreter(funcs.spin, timeout=1.0)
            future = d.client.submit(task, started, stopped)
            await wait_for(r_started, "started")
            with pytest.raises(TimeoutError, match=r"within 1\.0 s"):
                await d.result(future)
            await wait_for(r_stopped, "stopped")  # the code was interrupted


# -- cancellation ----------------------------------------------------------------------------


@pytest.mark.parametrize("processes", KINDS)
@pytest.mark.parametrize("how", ["cancel", "release"])
async def test_cancel_interrupts_the_running_code(
    processes: bool, how: str, tmp_path: Path
) -> None:
    async with dask_cluster(processes) as d:  # one worker, one thread
        with fifos(tmp_path) as (started, stopped, r_started, r_stopped):
            future = d.client.submit(
                in_interpreter(funcs.spin), started, stopped, pure=False
            )
            await wait_for(r_started, "started")
            if how == "cancel":
                await d.call(d.client.cancel, future)
            else:
                del future  # the last reference: the scheduler releases the task
            await wait_for(r_stopped, "stopped")  # interrupted, its finally ran
        # the worker's only thread slot is free again
        assert await d.result(d.client.submit(in_interpreter(funcs.add), 3, 4)) == 7
        (stats,) = await d.run(funcs.pool_stats)
        assert stats == (0, 1, 0, 1, 0)  # busy, completed, failed, cancelled, abandoned


def test_a_task_released_before_its_call_starts_never_runs() -> None:
    """The plugin's bookkeeping when the release comes first (rare with a real cluster).

    Driven by hand on asyncio, where Dask runs its tasks: a task named as Dask names
    them calls the plugin as ``in_interpreter`` does.
    """
    import asyncio

    async def main() -> None:
        plugin = InterpreterPlugin(max_workers=1)
        async with aiointerp.InterpreterPool(1) as pool:
            plugin._pool = pool
            key = ("spin", 0)
            plugin.transition(key, "executing", "released")  # no call of ours runs yet

            async def call() -> Any:
                return await plugin._run(funcs.add, (1, 2), None, "add", "tcp://w")

            name = compat.execute_task_name(key)
            with pytest.raises(distributed.Reschedule):
                await asyncio.create_task(call(), name=name)
            assert plugin._released == set()
            assert pool.stats().created == 0  # nothing ran
            # a release that ends (the code returned) leaves no mark behind
            plugin.transition(key, "executing", "released")
            plugin.transition(key, "cancelled", "memory")
            assert plugin._released == set()
            assert await asyncio.create_task(call(), name=name) == 3
            plugin._pool = None

    asyncio.run(main())


@pytest.mark.parametrize("processes", KINDS)
async def test_closing_the_cluster_interrupts_running_calls(
    processes: bool, tmp_path: Path
) -> None:
    async with dask_cluster(processes, threads=2) as d:
        with fifos(tmp_path) as (started, stopped, r_started, r_stopped):
            future = d.client.submit(
                in_interpreter(funcs.spin), started, stopped, pure=False
            )
            await wait_for(r_started, "started")
            await d.close_cluster()
            await wait_for(r_stopped, "stopped")
            del future
    # no_child_left and the autouse leak check: no process, interpreter or thread


async def test_unregistering_the_plugin_fails_running_calls(tmp_path: Path) -> None:
    async with dask_cluster(False) as d:
        with fifos(tmp_path) as (started, stopped, r_started, r_stopped):
            future = d.client.submit(
                in_interpreter(funcs.spin), started, stopped, pure=False
            )
            await wait_for(r_started, "started")
            await d.call(d.client.unregister_worker_plugin, "aiointerp")
            await wait_for(r_stopped, "stopped")
            with pytest.raises(PoolClosedError, match="was closed"):
                await d.result(future)


# -- kind="process" ------------------------------------------------------------------------


@pytest.mark.parametrize("processes", KINDS)
async def test_plugin_of_kind_process_runs_and_interrupts_calls_in_child_processes(
    processes: bool, tmp_path: Path
) -> None:
    async with dask_cluster(processes, plugin=InterpreterPlugin(kind="process")) as d:
        ((_, _, worker_pid),) = await d.run(funcs.profiler_state)
        call_pid = await d.result(
            d.client.submit(in_interpreter(funcs.pid), pure=False)
        )
        assert call_pid not in (worker_pid, os.getpid())  # a child of the worker
        with fifos(tmp_path) as (started, stopped, r_started, r_stopped):
            future = d.client.submit(
                in_interpreter(funcs.spin), started, stopped, pure=False
            )
            await wait_for(r_started, "started")
            await d.call(d.client.cancel, future)
            await wait_for(
                r_stopped, "stopped"
            )  # interrupted in place, its finally ran
        # the worker's only thread slot is free again
        assert await d.result(d.client.submit(in_interpreter(funcs.add), 3, 4)) == 7
        (stats,) = await d.run(funcs.pool_stats)
        assert stats == (0, 2, 0, 1, 0)  # busy, completed, failed, cancelled, abandoned
        assert await d.run(funcs.live_interpreters) == [0]  # processes only


@pytest.mark.parametrize(
    ("kind", "recipient"),
    [("interpreter", "an isolated interpreter"), ("process", "a child process")],
)
async def test_unshareable_arguments_say_where_they_were_going(
    kind: str, recipient: str
) -> None:
    from aiointerp._dask._worker import _call

    async with aiointerp.InterpreterPool(1, kind=kind) as pool:
        with pytest.raises(NotShareableError) as info:
            await _call(pool, funcs.add, (threading.Lock(), 1), None, "add", "tcp://w")
    notes = "".join(info.value.__notes__)
    assert f"the worker process loaded add, but it cannot be passed to {recipient}" in (
        notes
    )


# -- Dask's profiler ----------------------------------------------------------------------


def test_profiler_crash_versions() -> None:
    from aiointerp._host._defects import sampling_may_crash

    assert sampling_may_crash((3, 13, 0))
    assert sampling_may_crash((3, 14, 7))
    assert not sampling_may_crash((3, 13, 18))
    assert not sampling_may_crash((3, 14, 10))
    assert not sampling_may_crash((3, 15, 2))
    assert not sampling_may_crash((3, 16, 0))
    assert compat.PROFILER_CRASHES == sampling_may_crash()
    if compat.PROFILER_CRASHES:  # importing aiointerp.dask turned it off
        assert dask.config.get("distributed.worker.profile.enabled") is False


FAST_PROFILER = {
    "distributed.worker.profile.interval": "1ms",
    "distributed.worker.profile.cycle": "2ms",
}


async def test_plugin_of_kind_process_leaves_the_profiler_on() -> None:
    """No subinterpreter runs in the worker: the profiler stays on, on every Python."""
    enabled = {"distributed.worker.profile.enabled": True, **FAST_PROFILER}
    with dask.config.set(enabled):
        async with dask_cluster(True, plugin=InterpreterPlugin(kind="process")) as d:
            futures = d.client.map(
                in_interpreter(funcs.work_for), [0.05] * 10, pure=False
            )
            assert all(n > 0 for n in await d.gather(futures))
            ((thread, callbacks, _),) = await d.run(funcs.profiler_state)
            assert (thread, callbacks) == (True, True)
            assert await d.run(funcs.live_interpreters) == [0]


@pytest.mark.parametrize("processes", KINDS)
async def test_interpreters_run_beside_dasks_profiler_settings(processes: bool) -> None:
    """Calls run for a while under a 1 ms profiler setting; no worker crashes.

    Where the profiler crashes the process, it is off (the import turned it off, the
    plugin stopped the rest); elsewhere it runs beside the interpreters.
    """
    with dask.config.set(FAST_PROFILER):
        async with dask_cluster(processes, threads=2) as d:
            ((_, _, pid),) = await d.run(funcs.profiler_state)
            futures = d.client.map(
                in_interpreter(funcs.work_for), [0.05] * 20, pure=False
            )
            assert all(n > 0 for n in await d.gather(futures))
            ((thread, callbacks, pid_after),) = await d.run(funcs.profiler_state)
            assert pid_after == pid  # the same worker process, alive
            assert thread is callbacks is (not compat.PROFILER_CRASHES)


async def test_plugin_and_a_worker_whose_profiler_runs() -> None:
    """Where the profiler may crash the process the plugin refuses; elsewhere it runs."""
    # worker processes only: a Profile thread started in this process would outlive
    # the cluster (one per event loop) and crash later tests
    enabled = {"distributed.worker.profile.enabled": True, **FAST_PROFILER}
    with dask.config.set(enabled):
        async with dask_cluster(True, plugin=False) as d:
            ((thread, _, pid),) = await d.run(funcs.profiler_state)
            assert thread
            if not compat.PROFILER_CRASHES:  # accepted: the profiler stays on
                await d.register()
                future = d.client.submit(in_interpreter(funcs.add), 1, 2, pure=False)
                assert await d.result(future) == 3
                ((thread, callbacks, pid_after),) = await d.run(funcs.profiler_state)
                assert (thread, callbacks, pid_after) == (True, True, pid)
                return
            with pytest.raises(RuntimeError, match="DASK_DISTRIBUTED__WORKER__PROFILE"):
                await d.register()
            for registered in (True, False):  # the plugin that refused, then none
                future = d.client.submit(in_interpreter(funcs.add), 1, 2, pure=False)
                with pytest.raises(RuntimeError, match="sampling profiler"):
                    await d.result(future)
                if registered:
                    await d.call(d.client.unregister_worker_plugin, "aiointerp")
            ((_, _, pid_after),) = await d.run(funcs.profiler_state)
            assert pid_after == pid
            assert await d.run(funcs.live_interpreters) == [0]  # none was started


# -- compat: the Dask internals relied on ----------------------------------------------


async def test_execute_task_names_match_keys() -> None:
    async with dask_cluster(False, plugin=False) as d:
        future = d.client.submit(funcs.task_name, key=("x", 1))
        assert await d.result(future) == compat.execute_task_name(("x", 1))
        future = d.client.submit(funcs.task_name, key="y-1")
        assert await d.result(future) == compat.execute_task_name("y-1")


def test_supported_range_covers_the_installed_distributed() -> None:
    from packaging.requirements import Requirement

    requirement = Requirement(compat.SUPPORTED)
    assert requirement.name == "distributed"
    assert requirement.specifier.contains(distributed.__version__)


# -- DaskPool ------------------------------------------------------------------------------


async def test_dask_pool_run_sync_and_errors() -> None:
    async with dask_cluster(False, threads=2) as d, DaskPool(d.client) as pool:
        assert pool.max_workers == 2
        assert await pool.run_sync(funcs.add, 1, 2) == 3
        with pytest.raises(funcs.Boom, match="bang") as info:
            await pool.run_sync(funcs.fail, "bang")
        assert isinstance(info.value.__cause__, RemoteTraceback)
        stats = pool.stats()
        assert (stats.completed, stats.failed, stats.busy) == (1, 1, 0)
    with pytest.raises(PoolClosedError):
        await pool.run_sync(funcs.add, 1, 2)


async def test_dask_pool_must_be_opened() -> None:
    pool = DaskPool(None, timeout=1.0)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="async with"):
        await pool.run_sync(funcs.add, 1, 2)
    with pytest.raises(ValueError, match="timeout"):
        DaskPool(None, timeout=-1)  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["cancel", "cancel-with-timeout", "timeout"])
async def test_dask_pool_cancellation_interrupts_the_code(
    how: str, tmp_path: Path
) -> None:
    async with dask_cluster(True) as d, DaskPool(d.client) as pool:
        with fifos(tmp_path) as (started, stopped, r_started, r_stopped):
            if how == "timeout":
                with pytest.raises(TimeoutError, match="was cancelled"):
                    await pool.run_sync(funcs.spin, started, stopped, timeout=1.0)
            else:  # cancelled from outside, with or without a timeout of its own
                call = functools.partial(pool.run_sync, funcs.spin, started, stopped)
                if how == "cancel-with-timeout":
                    call = functools.partial(call, timeout=HANG)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    await wait_for(r_started, "started")
                    tg.cancel_scope.cancel()
            await wait_for(r_stopped, "stopped")
        assert await pool.run_sync(funcs.add, 1, 1) == 2  # the slot is free
        stats = pool.stats()
        assert (stats.cancelled, stats.timed_out, stats.busy) == (
            how != "timeout",
            how == "timeout",
            0,
        )


@pytest.mark.parametrize("ordered", [True, False])
async def test_dask_pool_map(ordered: bool) -> None:
    async with dask_cluster(False, threads=2) as d, DaskPool(d.client) as pool:
        starts = range(0, 1000, 100)
        results = [
            r
            async for r in pool.map(
                functools.partial(funcs.count_primes, stop=1000),
                starts,
                ordered=ordered,
            )
        ]
        expected = [funcs.count_primes(s, 1000) for s in starts]
        assert results == expected if ordered else sorted(results) == sorted(expected)


async def test_dask_pool_map_error_stops_the_rest() -> None:
    async with dask_cluster(False, threads=2) as d, DaskPool(d.client) as pool:
        with pytest.raises(funcs.Boom, match="first"):
            async for _ in pool.map(funcs.fail, ["first"] * 5, max_in_flight=2):
                pass
        assert pool.stats().busy == 0


# -- packaging -----------------------------------------------------------------------------


def test_import_aiointerp_does_not_import_dask() -> None:
    code = textwrap.dedent(
        """
        import sys, aiointerp, anyio
        async def main():
            return await aiointerp.run_sync_in_interpreter(abs, -1)
        assert anyio.run(main) == 1
        loaded = sorted({"dask", "distributed", "aiointerp.dask"} & set(sys.modules))
        assert not loaded, loaded
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr


def test_public_names() -> None:
    import aiointerp.dask as module

    assert module.__all__ == ["DaskPool", "InterpreterPlugin", "in_interpreter"]
    for name in module.__all__:
        assert getattr(module, name).__module__ == "aiointerp.dask"
    assert InterpreterPlugin.name == "aiointerp"
    assert issubclass(InterpreterPlugin, distributed.WorkerPlugin)
    params = inspect.signature(in_interpreter).parameters
    assert params["func"].kind is inspect.Parameter.POSITIONAL_ONLY
    assert params["timeout"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(DaskPool).parameters) == ["client", "timeout"]
    with pytest.raises(ValueError, match="min_idle"):
        InterpreterPlugin(max_workers=1, min_idle=2)
    with pytest.raises(ValueError, match="kind must be"):
        InterpreterPlugin(kind="thread")
    params = inspect.signature(InterpreterPlugin).parameters
    assert list(params) == ["max_workers", "kind", "pool_options"]
    assert (params["kind"].kind, params["kind"].default) == (
        inspect.Parameter.KEYWORD_ONLY,
        "interpreter",
    )
    # Dask pickles the plugin to each worker: the kind goes along
    plugin = pickle.loads(pickle.dumps(InterpreterPlugin(2, kind="process")))
    assert (plugin._max_workers, plugin._kind) == (2, "process")
    assert repr(plugin) == "InterpreterPlugin(max_workers=2, kind='process')"
    # without max_workers (the worker's nthreads) any min_idle may fit
    assert InterpreterPlugin(min_idle=2)._options == {"min_idle": 2}


def test_every_pool_option_passes_through() -> None:
    # InterpreterPool's options: max_workers and kind, and the others, in its order
    options = typing.get_type_hints(PoolOptions)
    pool = typing.get_type_hints(aiointerp.InterpreterPool.__init__)
    del pool["return"]
    assert list(inspect.signature(aiointerp.InterpreterPool).parameters) == list(pool)
    assert [name for name in pool if name not in ("max_workers", "kind")] == list(
        options
    )
    for name, hint in options.items():
        assert hint == pool[name], name
    assert (
        typing.get_type_hints(InterpreterPlugin.__init__)["pool_options"]
        == Unpack[PoolOptions]
    )
    # iterators become tuples: Dask pickles the plugin, the check must not use them
    plugin = InterpreterPlugin(
        preload=iter(["colorsys"]),
        initargs=iter([1]),
        initializer=abs,
        max_waiting=3,
        forward_output=False,
    )
    plugin = pickle.loads(pickle.dumps(plugin))
    assert plugin._options == {
        "preload": ("colorsys",),
        "initargs": (1,),
        "initializer": abs,
        "max_waiting": 3,
        "forward_output": False,
    }


async def test_an_asynchronous_client_runs_on_asyncio_only() -> None:
    # Dask refuses an asynchronous Client on trio before it is connected; one that
    # got there anyway (a stand-in here: only its flag is read) is refused too
    import sniffio

    class AsynchronousClient:
        asynchronous = True

    if sniffio.current_async_library() == "asyncio":
        pytest.skip("on asyncio it connects: the tests of real clients cover it")
    pool = DaskPool(cast("distributed.Client", AsynchronousClient()))
    with pytest.raises(RuntimeError, match="runs on asyncio only"):
        await pool.__aenter__()
