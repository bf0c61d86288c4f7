"""The core engine: what crosses the interpreter boundary, errors, capacity, reuse.

Every test runs real subinterpreters under asyncio and trio. Blocking calls are
released through pipes the test controls (their fds cross as ints), never by sleeps.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import _funcs_core
import anyio
import pytest

import aiointerp
from aiointerp import InterpreterPool, NotShareableError, RemoteError, RemoteTraceback
from aiointerp._wire import _interp

pytestmark = pytest.mark.anyio

FUNCS_FILE = Path(_funcs_core.__file__).name


def _same(a: object, b: object) -> bool:
    """Deep equality that also compares types (``True`` is not ``1``) and float bits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)  # nan == nan, -0.0 != 0.0
    if isinstance(a, tuple | list):
        assert isinstance(b, tuple | list)
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


def _line_of(func: Callable[..., object], marker: str) -> int:
    """The line number of the source line of *func* that contains *marker*."""
    lines, first = inspect.getsourcelines(func)
    for offset, line in enumerate(lines):
        if marker in line:
            return first + offset
    raise AssertionError(f"{marker!r} not in {func.__qualname__}")


def _aiointerp_threads() -> int:
    return sum(t.name.startswith("aiointerp") for t in threading.enumerate())


async def _read_tag(fd: int) -> int:
    """Wait for one byte on the non-blocking pipe *fd*: the tag a worker wrote."""
    while True:
        try:
            return os.read(fd, 1)[0]
        except BlockingIOError:
            await anyio.wait_readable(fd)


def _pipe_fds() -> set[int]:
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("pipe:"):
                fds.add(int(name))
        except OSError:
            pass
    return fds


# -- results and arguments round-trip ---------------------------------------------

VALUES = [
    pytest.param(None, id="None"),
    pytest.param(True, id="True"),
    pytest.param(False, id="False"),
    pytest.param(0, id="zero"),
    pytest.param(2**63 - 1, id="int64-max"),
    pytest.param(-(2**63), id="int64-min"),
    pytest.param(2**63, id="int-65-bits"),
    pytest.param(-(2**200) + 7, id="int-negative-huge"),
    pytest.param(1.5, id="float"),
    pytest.param(-0.0, id="float-negative-zero"),
    pytest.param(math.inf, id="float-inf"),
    pytest.param(math.nan, id="float-nan"),
    pytest.param("", id="str-empty"),
    pytest.param("héllo ☃ \x00 wörld", id="str-unicode"),
    pytest.param(b"\x00\xffbytes", id="bytes"),
    pytest.param((), id="tuple-empty"),
    pytest.param((1, ("a", (b"b", None, (True, 2.5)))), id="tuple-nested"),
    pytest.param((1, [2, (3,)]), id="tuple-with-list"),
    pytest.param((2**70, "big int inside"), id="tuple-with-big-int"),
    pytest.param([1, "a", [None, (2,)]], id="list"),
    pytest.param({"a": [1], 2: (3, {"b": None})}, id="dict"),
    pytest.param({1, 2, "three"}, id="set"),
    pytest.param(frozenset({"x", b"y"}), id="frozenset"),
    pytest.param(bytearray(b"mutable"), id="bytearray"),
    pytest.param(3 + 4j, id="complex"),
    pytest.param(
        _funcs_core.Record("r", [1, 2], frozenset({"t"})), id="dataclass-instance"
    ),
    pytest.param(_funcs_core.Scaler(3), id="object"),
]


@pytest.mark.parametrize("value", VALUES)
async def test_value_round_trips_with_its_type(value: object) -> None:
    async with InterpreterPool(1) as pool:
        result = await pool.run_sync(_funcs_core.identity, value)
    assert _same(result, value), (result, value)


async def test_many_arguments_of_mixed_kinds() -> None:
    args = (None, True, 2**64, "s", b"b", (1, [2]), {"k": {3}})
    async with InterpreterPool(1) as pool:
        assert _same(await pool.run_sync(_funcs_core.echo_args, *args), args)
        assert await pool.run_sync(_funcs_core.echo_args) == ()


async def test_shareable_results_keep_bool_type() -> None:
    async with InterpreterPool(1) as pool:
        assert await pool.run_sync(operator.truth, 1) is True
        assert await pool.run_sync(operator.not_, 1) is False
        assert type(await pool.run_sync(operator.add, True, True)) is int


CALLABLES = [
    pytest.param(
        functools.partial(_funcs_core.with_keywords, 1, c=30),
        (20,),
        (1, 20, 30, 4),
        id="partial-with-keywords",
    ),
    pytest.param(
        functools.partial(functools.partial(_funcs_core.with_keywords, d=40), 1),
        (),
        (1, 2, 3, 40),
        id="nested-partial",
    ),
    pytest.param(operator.add, (2, 3), 5, id="operator.add"),
    pytest.param(len, ("abcd",), 4, id="len"),
    pytest.param(_funcs_core.Scaler(3).scale, (5,), 15, id="bound-method"),
    pytest.param("a-b-c".split, ("-",), ["a", "b", "c"], id="bound-builtin-method"),
    pytest.param(_funcs_core.Record, ("n", [1], frozenset()), None, id="class"),
]


@pytest.mark.parametrize(("func", "args", "expected"), CALLABLES)
async def test_picklable_callables(
    func: Callable[..., object], args: tuple[object, ...], expected: object
) -> None:
    async with InterpreterPool(1) as pool:
        result = await pool.run_sync(func, *args)
    if expected is None:
        expected = func(*args)
    assert _same(result, expected)


async def test_lambdas_and_closures_with_cloudpickle() -> None:
    pytest.importorskip("cloudpickle")  # installed in every test environment
    offset = 5

    def add_offset(value: int) -> int:
        return value + offset

    async with InterpreterPool(1) as pool:
        assert await pool.run_sync(lambda x: x * 2, 21) == 42
        assert await pool.run_sync(add_offset, 1) == 6
        assert await pool.run_sync(functools.partial(add_offset, 10)) == 15


async def test_lambdas_and_closures_without_cloudpickle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)

    def closure(value: int) -> int:
        return value

    async with InterpreterPool(1) as pool:
        with pytest.raises(NotShareableError) as excinfo:
            await pool.run_sync(lambda: None)
        message = str(excinfo.value)
        assert "<lambda>" in message
        assert "module level" in message
        assert "cloudpickle" in message
        with pytest.raises(NotShareableError) as excinfo:
            await pool.run_sync(closure, 1)
        message = str(excinfo.value)
        assert "closure" in message
        assert "<locals>" in message
        assert "module level" in message
        assert "cloudpickle" in message
        assert pool.stats().created == 0
        assert await pool.run_sync(_funcs_core.identity, 1) == 1  # by reference


# -- exceptions ------------------------------------------------------------------------


async def test_exception_keeps_type_args_and_remote_traceback() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(ValueError) as excinfo:  # noqa: PT011 - args checked below
            await pool.run_sync(_funcs_core.fail_with_value_error, "bad value")
    exc = excinfo.value
    assert type(exc) is ValueError
    assert exc.args == ("bad value", 42)
    cause = exc.__cause__
    assert isinstance(cause, RemoteTraceback)
    line = _line_of(_funcs_core.fail_with_value_error, "raise ValueError")
    where = f'{FUNCS_FILE}", line {line}, in fail_with_value_error'
    assert where in cause.text
    assert "raise ValueError(message, 42)" in cause.text
    assert "ValueError: ('bad value', 42)" in cause.text
    assert "_inside.py" not in cause.text  # only the user's frames
    shown = "".join(traceback.format_exception(exc))
    assert where in shown
    assert "raise ValueError(message, 42)" in shown
    assert "RemoteTraceback" in shown


async def test_custom_exception_keeps_type_and_state() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(_funcs_core.CustomError) as excinfo:
            await pool.run_sync(_funcs_core.fail_with_custom_error, 7)
    assert type(excinfo.value) is _funcs_core.CustomError
    assert (excinfo.value.code, excinfo.value.detail) == (7, "custom detail")
    assert isinstance(excinfo.value.__cause__, RemoteTraceback)
    assert "fail_with_custom_error" in excinfo.value.__cause__.text


async def test_exception_that_pickle_cannot_rebuild_keeps_its_type() -> None:
    # pickle would call UnpicklableError("left-right"): rebuilt without __init__
    # (tests/wire/test_exceptions.py has the other shapes, and the RemoteError fallback)
    async with InterpreterPool(1) as pool:
        with pytest.raises(_funcs_core.UnpicklableError) as excinfo:
            await pool.run_sync(_funcs_core.fail_unpicklable, "left", "right")
        assert await pool.run_sync(_funcs_core.identity, 1) == 1
    error = excinfo.value
    assert error.args == ("left-right",)
    cause = error.__cause__
    assert isinstance(cause, RemoteTraceback)
    line = _line_of(_funcs_core.fail_unpicklable, "unpicklable-marker")
    assert f"line {line}, in fail_unpicklable" in cause.text
    assert "raise UnpicklableError(left, right)" in cause.text


@pytest.mark.parametrize(
    ("func", "args", "type_name", "message", "marker"),
    [
        pytest.param(
            _funcs_core.exit_with, (3,), "SystemExit", "3", "exit-marker", id="exit"
        ),
        pytest.param(
            _funcs_core.interrupt_keyboard,
            (),
            "KeyboardInterrupt",
            "pressed inside",
            "keyboard-marker",
            id="keyboard-interrupt",
        ),
    ],
)
async def test_base_exceptions_stay_inside(
    func: Callable[..., object],
    args: tuple[object, ...],
    type_name: str,
    message: str,
    marker: str,
) -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(RemoteError) as excinfo:
            await pool.run_sync(func, *args)
        error = excinfo.value
        assert error.type_name == type_name
        assert error.message == message
        assert type_name in str(error)
        line = _line_of(func, marker)
        assert f"line {line}, in {func.__name__}" in error.remote_traceback
        # the host, its loop and the pool survive
        await anyio.lowlevel.checkpoint()
        assert await pool.run_sync(_funcs_core.identity, "next") == "next"
        stats = pool.stats()
        assert (stats.failed, stats.completed) == (1, 1)


async def test_recursion_error_is_reraised_and_pool_keeps_serving() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(RecursionError) as excinfo:
            await pool.run_sync(_funcs_core.recurse_forever, 0)
        assert isinstance(excinfo.value.__cause__, RemoteTraceback)
        assert "recurse_forever" in excinfo.value.__cause__.text
        assert await pool.run_sync(_funcs_core.identity, 5) == 5


async def test_subinterpreter_import_error_names_the_module_and_what_to_do() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(ImportError) as excinfo:
            await pool.run_sync(_funcs_core.fail_subinterpreter_import, "x")
    exc = excinfo.value
    assert exc.name == "x"
    # aiointerp's explanation first, the worker's own ImportError as the cause
    assert str(exc).startswith(
        "_funcs_core.fail_subinterpreter_import imported x while it ran, which does "
        "not support subinterpreters"
    )
    assert "kind='process'" in str(exc)
    assert "kind='auto'" in str(exc)
    cause = exc.__cause__
    assert isinstance(cause, ImportError)
    assert cause.name == "x"
    assert "does not support loading in subinterpreters" in str(cause)
    assert "fail_subinterpreter_import" in "".join(traceback.format_exception(exc))


@pytest.mark.parametrize("module", ["readline", "_curses"])
async def test_real_extension_refusing_subinterpreters(module: str) -> None:
    # both refuse to load in isolated interpreters on 3.13, 3.14 and 3.15
    async with InterpreterPool(1) as pool:
        with pytest.raises(ImportError, match="subinterpreters") as excinfo:
            await pool.run_sync(_funcs_core.import_module, module)
        assert await pool.run_sync(_funcs_core.identity, 1) == 1
    exc = excinfo.value
    assert exc.name == module
    assert f"imported {module} while it ran" in str(exc)
    assert "kind='auto'" in str(exc)
    assert isinstance(exc.__cause__, ImportError)


async def test_other_import_errors_get_no_hint() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(ModuleNotFoundError) as excinfo:
            await pool.run_sync(_funcs_core.import_module, "no_such_module_aiointerp")
    assert not hasattr(excinfo.value, "__notes__")
    assert excinfo.value.name == "no_such_module_aiointerp"


# -- what cannot cross --------------------------------------------------------------


@contextmanager
def _unpicklable(kind: str, tmp_path: Path) -> Iterator[object]:
    if kind == "lock":
        yield threading.Lock()
    elif kind == "nested-lock":
        yield {"locks": [threading.Lock()]}
    elif kind == "socket":
        with socket.socket() as sock:
            yield sock
    elif kind == "binary-file":
        with open(tmp_path / "data", "wb") as file:
            yield file
    else:
        with open(tmp_path / "text", "w") as file:
            yield file


@pytest.mark.parametrize(
    "kind", ["lock", "nested-lock", "socket", "binary-file", "text-file-for-writing"]
)
async def test_unpicklable_argument_fails_before_a_worker_is_taken(
    kind: str, tmp_path: Path
) -> None:
    with _unpicklable(kind, tmp_path) as argument:
        async with InterpreterPool(1) as pool:
            with pytest.raises(NotShareableError) as excinfo:
                await pool.run_sync(_funcs_core.identity, argument)
            stats = pool.stats()
            assert (stats.created, stats.workers, stats.waiting) == (0, 0, 0)
        # the same on a pool never used before, and through the default pool
        fresh = InterpreterPool(1)
        with pytest.raises(NotShareableError):
            await fresh.run_sync(_funcs_core.echo_args, 1, argument)
        assert fresh.stats().created == 0
        await fresh.aclose()
        with pytest.raises(NotShareableError):
            await aiointerp.run_sync_in_interpreter(_funcs_core.identity, argument)
        assert aiointerp.current_default_pool().stats().workers == 0
    message = str(excinfo.value)
    assert isinstance(excinfo.value, TypeError)
    assert "_funcs_core.identity" in message
    assert "argument" in message


async def test_unpicklable_function_fails_before_a_worker_is_taken() -> None:
    func = functools.partial(_funcs_core.identity, threading.Lock())
    async with InterpreterPool(1) as pool:
        with pytest.raises(NotShareableError, match=r"_funcs_core\.identity"):
            await pool.run_sync(func)
        assert pool.stats().created == 0


async def test_unpicklable_result_raises_in_caller_and_pool_keeps_serving() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(NotShareableError) as excinfo:
            await pool.run_sync(_funcs_core.make_lock)
        message = str(excinfo.value)
        assert "_funcs_core.make_lock" in message
        assert "lock" in message
        assert await pool.run_sync(_funcs_core.identity, "still") == "still"
        stats = pool.stats()
        assert (stats.workers, stats.failed, stats.completed) == (1, 1, 1)


ASYNC_CALLABLES = [
    pytest.param(_funcs_core.coroutine_function, id="coroutine-function"),
    pytest.param(
        functools.partial(_funcs_core.coroutine_function), id="partial-of-coroutine"
    ),
    pytest.param(_funcs_core.AsyncCallable(), id="async-dunder-call"),
    pytest.param(_funcs_core.async_generator_function, id="async-generator"),
]


@pytest.mark.parametrize("func", ASYNC_CALLABLES)
async def test_async_callables_are_rejected(func: Callable[..., object]) -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(TypeError, match="async") as excinfo:
            await pool.run_sync(func, 1)
        assert not isinstance(excinfo.value, NotShareableError)
        assert pool.stats().created == 0
    with pytest.raises(TypeError, match="async"):
        await aiointerp.run_sync_in_interpreter(func, 1)
    assert aiointerp.current_default_pool().stats().created == 0


async def test_non_callable_is_rejected() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(TypeError, match="not callable"):
            await pool.run_sync(42)  # type: ignore[arg-type]
        assert pool.stats().created == 0


# -- capacity, order, reuse ---------------------------------------------------------


async def test_capacity_limit_and_fifo_service() -> None:
    max_workers, callers = 2, 8
    started_r, started_w = os.pipe()
    release_r, release_w = os.pipe()
    os.set_blocking(started_r, False)
    results: dict[int, tuple[int, int]] = {}

    async def caller(pool: InterpreterPool, tag: int) -> None:
        results[tag] = await pool.run_sync(_funcs_core.hold, tag, started_w, release_r)

    try:
        with anyio.fail_after(60):  # hang guard
            async with InterpreterPool(max_workers) as pool:
                async with anyio.create_task_group() as tg:
                    try:
                        for tag in range(callers):
                            tg.start_soon(caller, pool, tag)
                            await anyio.wait_all_tasks_blocked()  # queued in order
                            stats = pool.stats()
                            assert stats.busy + stats.waiting == tag + 1
                            assert stats.workers <= max_workers
                        served = {await _read_tag(started_r) for _ in range(2)}
                        assert served == {0, 1}
                        stats = pool.stats()
                        assert stats.workers == stats.busy == max_workers
                        assert stats.waiting == callers - max_workers
                        order: list[int] = []
                        for _ in range(callers - max_workers):
                            os.write(release_w, b"x")  # one call ends,
                            order.append(await _read_tag(started_r))  # one starts
                            stats = pool.stats()
                            assert stats.workers == stats.busy == max_workers
                            assert stats.waiting == callers - max_workers - len(order)
                            assert stats.created == max_workers
                        assert order == list(range(max_workers, callers))
                    finally:
                        os.write(release_w, b"x" * callers)  # never leave one blocked
                stats = pool.stats()
    finally:
        for fd in (started_r, started_w, release_r, release_w):
            os.close(fd)
    assert sorted(results) == list(range(callers))
    ids = {interp for _, interp in results.values()}
    assert len(ids) == max_workers
    assert _interp.current_id() not in ids
    assert stats.created == max_workers
    assert (stats.completed, stats.busy, stats.waiting) == (callers, 0, 0)


async def test_idle_interpreter_is_reused() -> None:
    async with InterpreterPool(2) as pool:
        ids = [await pool.run_sync(_funcs_core.interp_id) for _ in range(4)]
        stats = pool.stats()
    assert len(set(ids)) == 1
    assert ids[0] != _interp.current_id()
    assert (stats.created, stats.idle, stats.busy, stats.completed) == (1, 1, 0, 4)


#: what a fresh worker must not have imported: every one costs each start-up ms
_HEAVY_MODULES = ("typing", "anyio", "trio", "sniffio", "asyncio", "logging")


async def test_workers_start_without_heavy_imports() -> None:
    # a builtin callable, so that the probe itself imports nothing into the worker
    probe = functools.partial(
        eval, f"sorted(m for m in {_HEAVY_MODULES!r} if m in __import__('sys').modules)"
    )
    async with InterpreterPool(1) as pool:
        assert await pool.run_sync(probe) == []


# -- memoryview -------------------------------------------------------------------------


async def test_memoryview_is_shared_not_copied() -> None:
    buffer = bytearray(b"\x01" + b"\x00" * 14 + b"\x02")
    async with InterpreterPool(1) as pool:
        before = await pool.run_sync(_funcs_core.poke, memoryview(buffer), 7)
        assert before == (1, 2)  # the worker saw the host's bytes
        assert buffer[0] == buffer[-1] == 7  # the host sees the worker's writes
        assert buffer[1:-1] == bytes(14)
        view = memoryview(buffer)[4:8]
        assert await pool.run_sync(_funcs_core.poke, view, 9) == (0, 0)
        assert buffer[4] == buffer[7] == 9
        view.release()


async def test_large_memoryview() -> None:
    size = 100 * 1024 * 1024
    buffer = bytearray(size)
    buffer[-1] = 5
    async with InterpreterPool(1) as pool:
        with anyio.fail_after(60):
            before = await pool.run_sync(_funcs_core.poke, memoryview(buffer), 3)
    assert before == (0, 5)
    assert buffer[0] == buffer[-1] == 3
    assert len(buffer) == size


# -- the default pool ---------------------------------------------------------------


async def test_default_pool_runs_calls() -> None:
    pool = aiointerp.current_default_pool()
    assert isinstance(pool, InterpreterPool)
    assert await aiointerp.run_sync_in_interpreter(operator.add, 1, 2) == 3
    assert await aiointerp.run_sync_in_interpreter(_funcs_core.identity, (1, [2])) == (
        1,
        [2],
    )
    seen: list[InterpreterPool] = []

    async def other_task() -> None:
        seen.append(aiointerp.current_default_pool())

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
    assert seen == [pool]
    assert aiointerp.current_default_pool() is pool
    assert pool.stats().completed == 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_default_pool_per_event_loop_and_closed_with_it(backend: str) -> None:
    # a sync test: each anyio.run below is an event loop of its own
    before = _interp.live_ids()

    async def main() -> InterpreterPool:
        pool = aiointerp.current_default_pool()
        assert aiointerp.current_default_pool() is pool
        ident = await aiointerp.run_sync_in_interpreter(_funcs_core.interp_id)
        assert _interp.live_ids() - before == {ident}
        assert pool.stats().workers == 1
        return pool

    first = anyio.run(main, backend=backend)
    assert _interp.live_ids() == before
    assert _aiointerp_threads() == 0
    second = anyio.run(main, backend=backend)
    assert second is not first
    assert _interp.live_ids() == before
    assert _aiointerp_threads() == 0
    assert first.stats().workers == second.stats().workers == 0


# -- nothing leaks ---------------------------------------------------------------------


async def test_closing_a_pool_releases_everything() -> None:
    interps, threads, pipes = _interp.live_ids(), _aiointerp_threads(), _pipe_fds()
    started_r, started_w = os.pipe()
    release_r, release_w = os.pipe()
    os.set_blocking(started_r, False)
    try:
        async with InterpreterPool(2) as pool:
            async with anyio.create_task_group() as tg:
                try:
                    for tag in range(2):  # two workers at once
                        tg.start_soon(
                            pool.run_sync, _funcs_core.hold, tag, started_w, release_r
                        )
                    with anyio.fail_after(30):  # hang guard
                        started = {await _read_tag(started_r) for _ in range(2)}
                    assert started == {0, 1}  # both run at once
                    # the baseline below is meaningful: the pool holds resources
                    assert len(_interp.live_ids() - interps) == 2
                    assert _aiointerp_threads() == threads + 2
                    assert len(_pipe_fds() - pipes) >= 2 * 6 + 4
                finally:
                    os.write(release_w, b"xx")
            assert pool.stats().idle == 2
    finally:
        for fd in (started_r, started_w, release_r, release_w):
            os.close(fd)
    assert _interp.live_ids() == interps
    assert _aiointerp_threads() == threads
    assert _pipe_fds() == pipes


async def test_a_module_added_to_sys_path_after_the_start_is_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "aiointerp_tests_late_mod.py").write_text("def f():\n    return 1\n")
    async with InterpreterPool(1) as pool:  # sys.path is taken here
        monkeypatch.syspath_prepend(str(tmp_path))
        import aiointerp_tests_late_mod  # type: ignore[import-not-found]

        with pytest.raises(ModuleNotFoundError) as excinfo:
            await pool.run_sync(aiointerp_tests_late_mod.f)
    notes = " ".join(getattr(excinfo.value, "__notes__", ()))
    assert "could not load the function or its arguments" in notes
    assert "sys.path is the one the host had when the pool started" in notes
    sys.modules.pop("aiointerp_tests_late_mod", None)
