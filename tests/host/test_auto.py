"""Functions whose modules refuse subinterpreters: by value, then a process.

tests/_funcs_auto.py is the module of a FastAPI app: it imports FastAPI, hence
pydantic_core, which refuses isolated interpreters. Under ``kind="interpreter"`` a
function of it runs in an interpreter when it can be sent by value (cloudpickle), and
otherwise fails with an ImportError naming the refused module and the import chain;
``kind="auto"`` runs it in a process then, and remembers that per function. No code
ever runs twice: only failures to load the function or its arguments are retried.

tests/_funcs_imports.py (and the package tests/_imports_pkg) holds functions whose own
code imports numpy, Pillow or pydantic: ``kind="auto"`` reads those imports before a
function's first call, probes the modules once per pool, and runs such a function in
a process from its first call.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import sys
from pathlib import Path

import _funcs_auto as web
import _funcs_core
import _funcs_imports as imports
import _funcs_lifecycle
import _funcs_packages as packages
import _imports_pkg.handlers as pkg_handlers
import anyio
import pytest
from _handshake import HANG, operator_events, pipe, wait_started

from aiointerp import InterpreterPool, RemoteTraceback
from aiointerp._host import _imports
from aiointerp._host._routing import Route, Router
from aiointerp._offload import _sendable
from aiointerp._wire._protocol import CALL, FUNCTION

pytestmark = pytest.mark.anyio

REFUSED = "pydantic_core._pydantic_core"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def no_cloudpickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host cannot import cloudpickle (workers never need it for these calls)."""
    monkeypatch.setitem(sys.modules, "cloudpickle", None)


# -- kind="interpreter": by value when the function's own code loads there ----------


async def test_function_of_a_fastapi_module_runs_in_an_interpreter_by_value() -> None:
    async with InterpreterPool(1) as pool:
        for rounds in (1, 2, 3):  # the second and third go by value at once
            assert await pool.run_sync(web.hash_pw, "pw", rounds) == web.hash_pw(
                "pw", rounds
            )
        pid, _ = await pool.run_sync(web.where)
        stats = pool.stats()
    assert pid == os.getpid()  # an interpreter of this process
    assert (stats.interpreters, stats.processes) == (1, 0)
    assert stats.completed == 4


async def test_by_value_covers_partials_and_keyword_arguments() -> None:
    call = functools.partial(web.hash_pw, rounds=2)
    async with InterpreterPool(1) as pool:
        assert await pool.run_sync(call, "pw") == web.hash_pw("pw", 2)


async def test_refusal_names_the_module_and_the_import_chain() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(ImportError) as excinfo:
            await pool.run_sync(web.app_title, "!")
        assert await pool.run_sync(_funcs_core.identity, 7) == 7  # it serves on
    exc = excinfo.value
    message = str(exc)
    assert exc.name == REFUSED
    assert message.startswith(f"loading _funcs_auto.app_title imports {REFUSED}")
    assert "also when sent by value" in message
    assert f"fastapi → pydantic → pydantic_core → {REFUSED}" in message
    assert "kind='auto'" in message
    assert "kind='process'" in message
    assert isinstance(exc.__cause__, ImportError)  # the worker's own error
    assert isinstance(exc.__cause__.__cause__, RemoteTraceback)


async def test_without_cloudpickle_the_error_says_to_install_it(
    no_cloudpickle: None,
) -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(ImportError) as excinfo:
            await pool.run_sync(web.hash_pw, "pw", 1)
    message = str(excinfo.value)
    assert f"_funcs_auto → fastapi → pydantic → pydantic_core → {REFUSED}" in message
    assert "does not import fastapi" in message
    assert "pip install cloudpickle" in message
    assert "[cloudpickle]" not in message


async def test_refused_argument_is_named_as_such() -> None:
    item = web.Item(name="a", size=3)
    async with InterpreterPool(1) as pool:
        with pytest.raises(ImportError, match="loading the arguments of") as excinfo:
            await pool.run_sync(web.size_of, item)
    assert excinfo.value.name == REFUSED


async def test_refusal_while_the_code_runs_is_not_retried(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    async with InterpreterPool(1) as pool:
        for _ in range(2):
            with pytest.raises(ImportError, match="while it ran") as excinfo:
                await pool.run_sync(web.import_in_body, str(marker))
            assert "Later calls" not in str(excinfo.value)
    assert len(lines(marker)) == 2  # once per call, never twice


# -- kind="auto": a process when an interpreter cannot load it ----------------------


async def test_auto_runs_what_loads_in_interpreters_there() -> None:
    async with InterpreterPool(2, kind="auto") as pool:
        assert await pool.run_sync(_funcs_core.identity, 1) == 1
        assert await pool.run_sync(web.hash_pw, "pw", 1) == web.hash_pw("pw", 1)
        stats = pool.stats()
    assert (stats.interpreters, stats.processes) == (stats.workers, 0)


async def test_auto_sends_what_cannot_load_to_a_process() -> None:
    item = web.Item(name="a", size=3)
    async with InterpreterPool(2, kind="auto") as pool:
        assert await pool.run_sync(web.app_title, "!") == "FastAPI!"
        assert await pool.run_sync(web.size_of, item) == 3
        pid, _ = await pool.run_sync(web.where)  # by value: an interpreter
        stats = pool.stats()
    assert pid == os.getpid()
    assert stats.processes == 1
    assert stats.failed == 0
    assert stats.completed == 3


async def test_auto_without_cloudpickle_goes_to_a_process(
    no_cloudpickle: None,
) -> None:
    async with InterpreterPool(1, kind="auto") as pool:
        pid, name = await pool.run_sync(web.where)
    assert pid != os.getpid()
    assert name == "_funcs_auto"


async def test_auto_remembers_each_decision(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiointerp")
    async with InterpreterPool(2, kind="auto") as pool:
        for _ in range(3):
            assert await pool.run_sync(web.app_title, "?") == "FastAPI?"
        stats = pool.stats()
    reroutes = [r for r in caplog.records if "refused subinterpreters" in r.message]
    # tried by reference, then by value, then sent to a process: once each
    assert len(reroutes) == 2
    assert stats.completed == 3


async def test_auto_refusal_while_running_raises_once_then_uses_a_process(
    tmp_path: Path,
) -> None:
    # an import whose name is computed: reading the code cannot see it
    marker = tmp_path / "ran"
    call = functools.partial(imports.import_by_name, str(marker), "pydantic_core")
    async with InterpreterPool(2, kind="auto") as pool:
        with pytest.raises(ImportError, match="Later calls of it run in a process"):
            await pool.run_sync(call)
        assert (await pool.run_sync(call))[1] == "pydantic_core"
    pids = lines(marker)
    assert len(pids) == 2  # each call ran once: the first is not retried silently
    assert pids[0] == str(os.getpid())
    assert pids[1] != str(os.getpid())


async def test_auto_cancel_runs_the_cleanup_in_the_process(tmp_path: Path) -> None:
    marker = tmp_path / "cleanup"
    fifo = tmp_path / "handshake"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        async with InterpreterPool(1, kind="auto") as pool:
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    pids.append(await wait_started(fd))
                    scope.cancel()

                pids: list[int] = []
                with anyio.fail_after(HANG):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(cancel)
                        await pool.run_sync(
                            web.spin_with_cleanup, str(fifo), str(marker)
                        )
            stats = pool.stats()
    finally:
        os.close(fd)
    assert scope.cancelled_caught
    assert pids[0] != os.getpid()  # it ran in a process...
    assert lines(marker) == ["cleanup FastAPI"]  # ...and its finally ran there
    assert (stats.cancelled, stats.abandoned) == (1, 0)


async def test_max_workers_bounds_every_kind_together() -> None:
    # one slot: a worker of the other kind is retired to make room, never added;
    # once a process runs, it serves the interpreter calls too (no churn)
    async with InterpreterPool(1, kind="auto") as pool:
        seen = []
        for func, arg in [
            (_funcs_core.identity, "a"),
            (web.app_title, "b"),
            (_funcs_core.identity, "c"),
            (web.app_title, "d"),
        ]:
            await pool.run_sync(func, arg)
            stats = pool.stats()
            assert stats.workers == 1
            seen.append((stats.interpreters, stats.processes))
        stats = pool.stats()
    assert seen == [(1, 0), (0, 1), (0, 1), (0, 1)]
    assert stats.created == 2


async def test_auto_under_concurrency_both_kinds_at_once() -> None:
    results: dict[int, object] = {}
    async with InterpreterPool(2, kind="auto") as pool:

        async def one(index: int) -> None:
            if index % 2:
                results[index] = await pool.run_sync(web.app_title, str(index))
            else:
                results[index] = await pool.run_sync(_funcs_core.identity, index)

        with anyio.fail_after(HANG):
            async with anyio.create_task_group() as tg:
                for index in range(12):
                    tg.start_soon(one, index)
        stats = pool.stats()
    assert results == {i: (f"FastAPI{i}" if i % 2 else i) for i in range(12)}
    assert stats.completed == 12
    assert stats.workers <= 2


async def test_auto_map_with_chunksize() -> None:
    async with InterpreterPool(2, kind="auto") as pool:
        out = [r async for r in pool.map(web.app_title, ["a", "b", "c"], chunksize=2)]
    assert out == ["FastAPIa", "FastAPIb", "FastAPIc"]


async def test_auto_whose_initializer_refuses_interpreters_uses_processes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the initializer imports readline, which refuses subinterpreters: interpreters
    # cannot start, so every call runs in a process (no endless retry, no failure)
    async with InterpreterPool(
        2, kind="auto", initializer=_funcs_core.import_module, initargs=("readline",)
    ) as pool:
        with anyio.fail_after(HANG):
            pid, _ = await pool.run_sync(web.where)
            assert await pool.run_sync(_funcs_core.identity, 3) == 3
        stats = pool.stats()
    assert pid != os.getpid()
    assert (stats.interpreters, stats.processes) == (0, stats.workers)
    assert stats.failed == 0
    [dropped] = [r for r in caplog.records if getattr(r, "event", "") == "kind_dropped"]
    assert (dropped.worker_kind, dropped.refused_module) == ("interpreter", "readline")


async def test_interpreter_pool_whose_initializer_refuses_says_why() -> None:
    from aiointerp import BrokenWorkerError

    pool = InterpreterPool(
        1, initializer=_funcs_core.import_module, initargs=("readline",)
    )
    with pytest.raises(BrokenWorkerError) as excinfo:
        async with pool:  # a pool with an initializer fails its opening
            pass
    cause = excinfo.value.__cause__
    assert isinstance(cause, ImportError)
    assert str(cause).startswith("the pool's initializer imported readline")
    assert "kind='process'" in str(cause)


async def test_offload_in_a_fastapi_module_runs_by_value() -> None:
    # the default pool (kind="interpreter"): the original function, by value
    assert await web.offloaded_hash("pw") == web.hash_pw("pw", 1)


async def test_a_process_never_reports_a_refusal() -> None:
    # an ImportError that reads like a refusal, raised in a process: raised as it
    # is (processes load everything: no retry by value, no rerouting)
    async with InterpreterPool(1, kind="process") as pool:
        with pytest.raises(ImportError) as excinfo:
            await pool.run_sync(_funcs_core.fail_subinterpreter_import, "x")
    assert str(excinfo.value) == "module x does not support loading in subinterpreters"
    assert isinstance(excinfo.value.__cause__, RemoteTraceback)


def test_a_process_pool_leaves_a_refusal_to_the_caller() -> None:
    # bookkeeping: were a process ever to report a refusal (the test above: it does
    # not), the router would not reroute it
    router = Router("process")
    blob = pickle.dumps(_funcs_core.identity)
    for stage in (FUNCTION, CALL):
        assert (
            router.after_refusal(_funcs_core.identity, blob, stage, router.first)
            is None
        )
    assert router.route(_funcs_core.identity, blob) == Route("process")


async def test_partials_of_one_function_share_its_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiointerp")
    async with InterpreterPool(1, kind="auto") as pool:
        for suffix in "abc":  # three pickles, one function
            call = functools.partial(web.app_title, suffix)
            assert await pool.run_sync(call) == f"FastAPI{suffix}"
    reroutes = [r for r in caplog.records if "refused subinterpreters" in r.message]
    assert len(reroutes) == 2  # by value, then a process: for the first call only


async def test_min_idle_reserve_does_not_starve_a_process_caller() -> None:
    # one slot kept warm for interpreters: a process caller still gets it, once
    async with InterpreterPool(1, min_idle=1, kind="auto") as pool:
        with anyio.fail_after(HANG):
            assert await pool.run_sync(web.app_title, "!") == "FastAPI!"
            assert await pool.run_sync(_funcs_core.identity, 2) == 2
        stats = pool.stats()
    assert stats.created <= 4  # no churn: each kind started about once per change


# -- kind="auto": the imports of a function's code, read before its first call ------


def probed(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The modules probed, one entry per probe of each (``module_probed`` events)."""
    return [
        r.probed_module
        for r in caplog.records
        if getattr(r, "event", None) == "module_probed"
    ]


def refusing_calls(marker: str) -> list[tuple[str, object, tuple[object, ...], object]]:
    """(label, callable, arguments, expected value) of each shape of code."""
    summer = imports.Summer()
    return [
        ("import in the body", imports.numpy_in_body, (marker, 4), 6),
        ("from PIL import Image", imports.pil_in_body, (marker,), (4, 3)),
        ("from pydantic import BaseModel", imports.pydantic_in_body, (marker,), "a"),
        ("nested function", imports.numpy_in_nested_function, (marker, 5), 10),
        ("class body", imports.pil_in_class_body, (marker,), (2, 5)),
        ("helper of the module", imports.numpy_in_helper, (marker, 3), 3),
        ("from . import heavy", pkg_handlers.relative_module, (marker, 4), 6),
        ("from .heavy import total", pkg_handlers.relative_from, (marker, 5), 10),
        (
            "functools.partial",
            functools.partial(imports.numpy_in_body, marker),
            (6,),
            15,
        ),
        (
            "@offload",  # what the wrapper sends: a reference to the original
            _sendable(imports.offloaded_numpy, imports.offloaded_numpy.__wrapped__),
            (marker, 3),
            3,
        ),
        ("local function, by value", imports.make_local(), (marker, 6), 15),
        ("callable object", summer, (marker, 4), 6),
        ("bound method", summer.total, (marker, 5), 10),
    ]


async def test_auto_runs_code_importing_a_refused_module_in_a_process_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiointerp")
    marker = tmp_path / "ran"
    calls = refusing_calls(str(marker))
    async with InterpreterPool(2, kind="auto") as pool:
        for label, func, args, expected in calls:
            pid, value = await pool.run_sync(func, *args)  # type: ignore[operator]
            assert value == expected, label
            assert pid != os.getpid(), f"{label}: ran in an interpreter"
        stats = pool.stats()
    # each call ran once, in a process: no ImportError, no second run anywhere
    pids = lines(marker)
    assert len(pids) == len(calls)
    assert str(os.getpid()) not in pids
    assert (stats.completed, stats.failed, stats.interpreters) == (len(calls), 0, 0)
    # each import probed once for the pool, whatever shape of code imported it
    modules = probed(caplog)
    assert len(modules) == len(set(modules)), modules
    assert {"numpy", "PIL.Image", "pydantic", "_imports_pkg.heavy"} <= set(modules)


async def test_auto_probes_each_module_once_for_concurrent_first_calls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiointerp")
    marker = str(tmp_path / "ran")
    results: list[tuple[int, object]] = []
    async with InterpreterPool(2, kind="auto") as pool:

        async def one(index: int) -> None:
            if index % 2:
                results.append(await pool.run_sync(imports.numpy_in_body, marker, 3))
            else:
                results.append(await pool.run_sync(imports.pil_in_body, marker))

        with anyio.fail_after(HANG):
            async with anyio.create_task_group() as tg:
                for index in range(8):
                    tg.start_soon(one, index)
        # later calls: nothing probed again
        assert (await pool.run_sync(imports.numpy_in_body, marker, 4))[1] == 6
    assert sorted(str(value) for _, value in results) == ["(4, 3)"] * 4 + ["3"] * 4
    assert all(pid != os.getpid() for pid, _ in results)
    assert len(lines(Path(marker))) == 9  # each call ran once
    assert sorted(probed(caplog)) == ["PIL", "PIL.Image", "numpy"]


async def test_auto_runs_code_importing_what_loads_in_an_interpreter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiointerp")
    marker = tmp_path / "ran"
    async with InterpreterPool(1, kind="auto") as pool:
        for _ in range(2):
            pid, text = await pool.run_sync(imports.stdlib_and_safe, str(marker))
            assert pid == os.getpid()  # an interpreter of this process
            assert text == '["1", "x"]'
        stats = pool.stats()
    assert (stats.interpreters, stats.processes) == (1, 0)
    # the stdlib is known to load; a module of the tests is probed, once
    assert probed(caplog) == ["_funcs_core"]


async def test_auto_decides_nothing_for_a_module_that_is_not_installed(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    async with InterpreterPool(1, kind="auto") as pool:
        with pytest.raises(ModuleNotFoundError, match="aiointerp_tests_no_such_module"):
            await pool.run_sync(imports.missing_in_body, str(marker))
        stats = pool.stats()
    assert lines(marker) == [str(os.getpid())]  # it ran, once, in an interpreter
    assert stats.processes == 0


async def test_auto_runs_a_function_whose_imports_cannot_be_read_as_any_other(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # imports_of promises not to raise; were it to, the call goes to the first route
    def unreadable(func: object) -> tuple[object, ...]:
        raise RuntimeError("unreadable code")

    monkeypatch.setattr(_imports, "imports_of", unreadable)
    caplog.set_level(logging.DEBUG, logger="aiointerp")
    marker = tmp_path / "ran"
    async with InterpreterPool(1, kind="auto") as pool:
        pid, text = await pool.run_sync(imports.stdlib_and_safe, str(marker))
        stats = pool.stats()
    assert pid == os.getpid()  # an interpreter of this process
    assert text == '["1", "x"]'
    assert (stats.interpreters, stats.processes) == (1, 0)
    assert any("could not read the imports of" in r.message for r in caplog.records)
    assert probed(caplog) == []  # nothing read, nothing probed


async def test_interpreter_and_process_pools_do_not_probe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiointerp")
    marker = tmp_path / "ran"
    async with InterpreterPool(1) as pool:
        with pytest.raises(ImportError, match="while it ran"):
            await pool.run_sync(imports.numpy_in_body, str(marker), 3)
    async with InterpreterPool(1, kind="process") as pool:
        assert (await pool.run_sync(imports.numpy_in_body, str(marker), 3))[1] == 3
    assert len(lines(marker)) == 2
    assert probed(caplog) == []


async def test_auto_a_cancelled_first_caller_leaves_the_probe_to_the_next(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the probe imports _imports_slow, which waits for the test: the first caller is
    # cancelled meanwhile, a second one waits for the same probe
    caplog.set_level(logging.DEBUG, logger="aiointerp")
    marker = str(tmp_path / "ran")
    started, release = tmp_path / "started", tmp_path / "release"
    os.mkfifo(started)
    os.mkfifo(release)
    monkeypatch.setenv("AIOINTERP_TEST_SLOW_STARTED", str(started))
    monkeypatch.setenv("AIOINTERP_TEST_SLOW_RELEASE", str(release))
    monkeypatch.setenv("AIOINTERP_TEST_SLOW_DONE", str(tmp_path / "done"))
    started_fd = os.open(started, os.O_RDWR | os.O_NONBLOCK)
    release_fd = os.open(release, os.O_RDWR | os.O_NONBLOCK)
    second: list[tuple[int, str]] = []

    async def call(pool: InterpreterPool) -> None:
        second.append(await pool.run_sync(imports.import_slow_module, marker))

    try:
        async with InterpreterPool(1, kind="auto") as pool:
            try:
                with anyio.fail_after(HANG):
                    with anyio.CancelScope() as first:
                        async with anyio.create_task_group() as tg:
                            tg.start_soon(
                                pool.run_sync, imports.import_slow_module, marker
                            )
                            await anyio.wait_readable(started_fd)  # probe imports it
                            first.cancel()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(call, pool)
                        await anyio.wait_all_tasks_blocked()
                        (tmp_path / "done").touch()
                        os.write(release_fd, b"r")  # the probe's import ends
            finally:  # never leave the probe blocked: the pool's closing waits for it
                os.write(release_fd, b"r")
            stats = pool.stats()
    finally:
        os.close(started_fd)
        os.close(release_fd)
    assert first.cancelled_caught
    assert second == [(os.getpid(), "_imports_slow")]  # loads: an interpreter
    assert lines(Path(marker)) == [str(os.getpid())]  # the cancelled call never ran
    assert probed(caplog) == ["_imports_slow"]
    assert (stats.cancelled, stats.completed) == (1, 1)


# -- capacity across kinds: the policy's rows (tests/host/test_policy.py) on real workers ---


def conversions(events: list[logging.LogRecord]) -> list[str]:
    """The reasons of the workers retired to make room for another kind."""
    return [
        r.reason  # type: ignore[attr-defined]
        for r in events
        if r.event == "worker_retired" and r.reason.startswith("making room")  # type: ignore[attr-defined]
    ]


async def test_a_mixed_burst_converts_at_most_one_worker() -> None:
    # rows "share: a steady mix on two workers keeps one of each (no thrash)" and
    # "spill: processes wanted by the whole pool take the interpreter's slot": 60
    # calls at once, 1 in 4 pure Python, the rest numpy (34 to 85 starts before)
    with operator_events() as events:
        async with InterpreterPool(2, kind="auto", idle_timeout=None) as pool:
            assert await pool.run_sync(packages.pid) != os.getpid()  # learned: process
            assert await pool.run_sync(_funcs_core.identity, 0) == 0
            warm = len(events.of("worker_started"))
            results: dict[int, object] = {}

            async def call(index: int) -> None:
                if index % 4:
                    results[index] = await pool.run_sync(packages.pid)
                else:
                    results[index] = await pool.run_sync(_funcs_core.identity, index)

            with anyio.fail_after(HANG):
                async with anyio.create_task_group() as tg:
                    for index in range(60):
                        tg.start_soon(call, index)
            stats = pool.stats()
    assert all(results[i] == i for i in range(0, 60, 4))
    assert all(results[i] != os.getpid() for i in range(60) if i % 4)
    assert len(events.of("worker_started")) - warm <= pool.max_workers + 1
    # the interpreter's slot may go to a process if the burst lasts, never back
    assert conversions(events.records) in (
        [],
        ["making room for a process worker (share)"],
    )
    assert stats.interpreters + stats.processes == 2
    assert stats.processes >= 1


async def test_a_kind_without_a_worker_takes_a_freed_worker_of_another() -> None:
    # row "starving: a freed worker of a kind with two makes room"
    with (
        operator_events() as events,
        pipe() as (started_r, started_w),
        pipe() as (release_r, release_w),
    ):
        async with InterpreterPool(2, kind="auto", idle_timeout=None) as pool:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    pool.run_sync, _funcs_lifecycle.block, started_w, release_r
                )
                with anyio.fail_after(HANG):
                    await anyio.wait_readable(started_r)
                # a second interpreter loads it (refused), then a process is needed:
                # no room, and no process worker: the idle interpreter makes room
                with anyio.fail_after(HANG):
                    assert await pool.run_sync(packages.pid) != os.getpid()
                stats = pool.stats()
                assert (stats.interpreters, stats.processes, stats.busy) == (1, 1, 1)
                os.write(release_w, b"r")  # the blocked call ran all along
    assert conversions(events.records) == [
        "making room for a process worker (starving)"
    ]


async def test_one_slot_serves_both_kinds() -> None:
    # max_workers=1, both kinds in use: the process runs the interpreter calls too
    # ("spill: ..."), and every caller is served
    with operator_events() as events:
        async with InterpreterPool(1, kind="auto") as pool:
            assert await pool.run_sync(packages.pid) != os.getpid()
            results: list[object] = []

            async def call(index: int) -> None:
                if index % 2:
                    results.append(await pool.run_sync(packages.pid))
                else:
                    results.append(await pool.run_sync(_funcs_core.identity, index))

            with anyio.fail_after(HANG):
                async with anyio.create_task_group() as tg:
                    for index in range(12):
                        tg.start_soon(call, index)
    assert sorted(r for r in results if isinstance(r, int) and r < 12) == list(
        range(0, 12, 2)
    )
    assert len(results) == 12
    # the first numpy call made room for a process: it serves everything since
    assert conversions(events.records) == [
        "making room for a process worker (starving)"
    ]


async def test_an_interpreter_call_runs_in_a_free_process_when_no_interpreter_is() -> (
    None
):
    # "spill": a call that loads in an interpreter takes a free process worker
    # rather than wait; a call with a memoryview argument (written in place, in an
    # interpreter) never does: it waits for an interpreter
    with pipe() as (started_r, started_w), pipe() as (release_r, release_w):
        async with InterpreterPool(2, kind="auto", idle_timeout=None) as pool:
            assert await pool.run_sync(packages.pid) != os.getpid()  # a process
            buffer = bytearray(b"abc")
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    pool.run_sync, _funcs_lifecycle.block, started_w, release_r
                )
                with anyio.fail_after(HANG):
                    await anyio.wait_readable(started_r)  # the interpreter is busy
                    pid, _ = await pool.run_sync(web.where)
                assert pid != os.getpid()  # it ran in the process
                poked = anyio.Event()

                async def poke() -> None:
                    await pool.run_sync(_funcs_core.poke, memoryview(buffer), 7)
                    poked.set()

                tg.start_soon(poke)
                await anyio.wait_all_tasks_blocked()
                assert not poked.is_set()  # it waits for the interpreter
                assert pool.stats().waiting == 1
                os.write(release_w, b"r")
                with anyio.fail_after(HANG):
                    await poked.wait()
            stats = pool.stats()
    assert bytes(buffer) == b"7b7".replace(b"7", bytes([7]))  # written in place
    assert (stats.interpreters, stats.processes) == (1, 1)
