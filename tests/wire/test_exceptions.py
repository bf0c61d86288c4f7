"""Exceptions raised in interpreters come back as themselves: class, args, attributes,
notes, cause and context chain, group members; RemoteError only when the class cannot
be found. Also StopIteration and StopAsyncIteration, and results that cannot be
rebuilt.

Every test runs real subinterpreters (asyncio, uvloop and trio for the async ones).
"""

from __future__ import annotations

import concurrent.futures
import errno
import functools
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import _funcs_exceptions as fx
import pytest
from conftest import child_env

import aiointerp
from aiointerp import (
    InterpreterPool,
    NotShareableError,
    RemoteError,
    RemoteTraceback,
    run_sync_in_interpreter,
)

anyio_mark = pytest.mark.anyio

FUNCS_FILE = Path(fx.__file__).name


def _notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", ()))


def _aiointerp_notes(exc: BaseException) -> list[str]:
    return [note for note in _notes(exc) if note.startswith("aiointerp:")]


@pytest.fixture
def worker_only(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A module in a directory only the worker puts on sys.path: (directory, name)."""
    name = f"aiointerp_worker_only_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(fx.WORKER_ONLY_SOURCE)
    yield str(tmp_path), name
    assert name not in sys.modules  # the host never imported it


# -- custom exceptions keep their class and state ------------------------------------


@anyio_mark
async def test_custom_exception_caught_as_itself() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.QuotaExceeded) as excinfo:
            await pool.run_sync(fx.raise_quota, "alice", 3)
        assert await pool.run_sync(fx.quota_at, 1, 0) == 1  # the pool keeps serving
    exc = excinfo.value
    assert type(exc) is fx.QuotaExceeded
    assert (exc.user, exc.used) == ("alice", 3)
    assert exc.args == ("alice used 3",)
    assert str(exc) == "alice used 3"
    assert _notes(exc) == ["first note", "second note"]
    cause = exc.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert f'{FUNCS_FILE}", line' in cause.text
    assert "raise error  # quota-marker" in cause.text
    shown = "".join(traceback.format_exception(exc))
    assert "QuotaExceeded: alice used 3" in shown
    assert "first note" in shown


@anyio_mark
async def test_run_sync_in_interpreter_and_map_batches_rebuild_too() -> None:
    with pytest.raises(fx.QuotaExceeded) as excinfo:
        await run_sync_in_interpreter(fx.raise_quota, "bob", 4)
    assert excinfo.value.user == "bob"
    async with InterpreterPool(1) as pool:
        results: list[int] = []

        async def consume() -> None:
            async for value in pool.map(
                functools.partial(fx.quota_at, stop_at=2),
                range(5),
                chunksize=3,  # one batch: its failing item is encoded in the batch
            ):
                results.append(value)

        with pytest.raises(fx.QuotaExceeded) as excinfo:
            await consume()
    assert results == [0, 1]
    assert (excinfo.value.user, excinfo.value.used) == ("ivan", 2)
    assert any("raised by item" in note for note in _notes(excinfo.value))


@anyio_mark
async def test_str_from_attributes_and_no_args() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.Described) as excinfo:
            await pool.run_sync(fx.raise_described, 5)
    assert excinfo.value.code == 5
    assert excinfo.value.args == ()
    assert str(excinfo.value) == "failed with code 5"


@anyio_mark
async def test_oserror_subclass_keeps_errno_strerror_filename() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.ConfigMissing) as excinfo:
            await pool.run_sync(fx.raise_config_missing, "/etc/app.toml")
    exc = excinfo.value
    assert isinstance(exc, FileNotFoundError)
    assert (exc.errno, exc.strerror, exc.filename) == (
        errno.ENOENT,
        "no configuration",
        "/etc/app.toml",
    )
    assert exc.path == "/etc/app.toml"
    assert str(exc) == "[Errno 2] no configuration: '/etc/app.toml'"


@anyio_mark
async def test_own_reduce_is_honoured() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.Reducing) as excinfo:
            await pool.run_sync(fx.raise_reducing, 2, 3)
    assert excinfo.value.rebuilt_by_reduce
    assert (excinfo.value.left, excinfo.value.right, excinfo.value.args) == (2, 3, (5,))


# -- the chain -----------------------------------------------------------------------


@anyio_mark
async def test_cause_and_context_chain() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.QuotaExceeded) as excinfo:
            await pool.run_sync(fx.raise_with_cause, "/data/x")
    exc = excinfo.value
    cause = exc.__cause__
    assert type(cause) is FileNotFoundError
    assert (cause.errno, cause.filename) == (errno.ENOENT, "/data/x")
    assert exc.__context__ is cause  # raised inside `except OSError`: the same object
    assert type(cause.__context__) is KeyError
    assert cause.__context__.args == ("missing",)
    assert not cause.__suppress_context__
    # the traceback from inside the interpreter ends the chain, as it is displayed
    remote = cause.__context__.__cause__
    assert isinstance(remote, RemoteTraceback)
    assert "raise_with_cause" in remote.text
    assert "During handling of the above exception" in remote.text
    shown = "".join(traceback.format_exception(exc))
    assert shown.index("RemoteTraceback") < shown.index("KeyError: 'missing'")
    assert shown.index("KeyError: 'missing'") < shown.index("FileNotFoundError")
    assert shown.index("FileNotFoundError") < shown.index("QuotaExceeded")


@anyio_mark
async def test_context_without_cause_and_from_none() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.QuotaExceeded) as excinfo:
            await pool.run_sync(fx.raise_with_context)
        with pytest.raises(fx.QuotaExceeded) as from_none:
            await pool.run_sync(fx.raise_from_none)
    exc = excinfo.value
    assert isinstance(exc.__cause__, RemoteTraceback)  # as for any exception
    assert type(exc.__context__) is KeyError
    assert "During handling of the above exception" in exc.__cause__.text
    exc = from_none.value
    assert isinstance(exc.__cause__, RemoteTraceback)
    assert type(exc.__context__) is KeyError  # kept, hidden as in the interpreter
    assert "During handling" not in exc.__cause__.text


@anyio_mark
async def test_cycle_and_long_chain() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.QuotaExceeded) as cycle:
            await pool.run_sync(fx.raise_cycle)
        with pytest.raises(ValueError, match=r"^99$") as long_chain:
            await pool.run_sync(fx.raise_long_chain, 100)
    first = cycle.value
    second = first.__cause__
    assert type(second) is ValueError
    assert second.args == ("b",)
    # the cycle is cut where the remote traceback is attached
    assert isinstance(second.__cause__, RemoteTraceback)
    traceback.format_exception(first)  # terminates
    link: BaseException | None = long_chain.value
    depth = 0
    while isinstance(link, ValueError):
        depth += 1
        last = link
        link = link.__cause__
    assert depth == 33  # the raised one and 32 links
    assert any("chain is cut here" in note for note in _notes(last))


@anyio_mark
async def test_base_exception_in_the_chain_becomes_remote_error() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.QuotaExceeded) as excinfo:
            await pool.run_sync(fx.raise_after_keyboard_interrupt)
    context = excinfo.value.__context__
    assert type(context) is RemoteError
    assert context.type_name == "KeyboardInterrupt"
    assert context.message == "inside"


@anyio_mark
async def test_exception_group_members_rebuilt() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(ExceptionGroup) as excinfo:
            await pool.run_sync(fx.raise_group)
    group = excinfo.value
    assert group.message == "several"
    quota, plain, described = group.exceptions
    assert type(quota) is fx.QuotaExceeded
    assert quota.user == "hana"
    assert type(plain) is ValueError
    assert str(described) == "failed with code 6"
    matched, rest = group.split(fx.QuotaExceeded)
    assert matched is not None
    assert rest is not None
    assert [type(e) for e in rest.exceptions] == [ValueError, fx.Described]


# -- what cannot be rebuilt ----------------------------------------------------------


@anyio_mark
async def test_attribute_that_cannot_be_pickled_is_dropped_with_a_note() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.QuotaExceeded) as excinfo:
            await pool.run_sync(fx.raise_with_lock_attribute)
        with pytest.raises(ValueError) as argument:  # noqa: PT011 - args checked below
            await pool.run_sync(fx.raise_with_lock_argument)
    exc = excinfo.value
    assert (exc.user, exc.used) == ("gina", 4)
    assert not hasattr(exc, "lock")
    (note,) = _aiointerp_notes(exc)
    assert note.startswith("aiointerp: attribute 'lock' was dropped")
    assert "cannot pickle" in note
    exc = argument.value
    assert exc.args[0] == "bad"
    assert "lock" in exc.args[1]  # its repr()
    (note,) = _aiointerp_notes(exc)
    assert "argument 1 cannot be pickled" in note


@anyio_mark
async def test_attribute_that_cannot_be_unpickled_is_dropped_with_a_note(
    worker_only: tuple[str, str],
) -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.QuotaExceeded) as excinfo:
            await pool.run_sync(fx.raise_with_worker_only_attribute, *worker_only)
    exc = excinfo.value
    assert (exc.user, exc.used) == ("judy", 7)
    assert not hasattr(exc, "thing")
    (note,) = _aiointerp_notes(exc)
    assert note.startswith("aiointerp: attribute 'thing' was dropped")
    assert "ModuleNotFoundError" in note


@anyio_mark
async def test_class_only_in_the_worker_becomes_remote_error_saying_why(
    worker_only: tuple[str, str],
) -> None:
    directory, module = worker_only
    async with InterpreterPool(1) as pool:
        with pytest.raises(RemoteError) as excinfo:
            await pool.run_sync(fx.raise_worker_only, directory, module)
    error = excinfo.value
    assert error.type_name == f"{module}.WorkerOnlyError"
    assert error.message == "only here"
    assert "raise_worker_only" in error.remote_traceback
    assert isinstance(error.__cause__, RemoteTraceback)
    notes = _notes(error)
    assert notes[0] == "a note of its own"
    assert "cannot be found in this process" in notes[-1]
    assert f"No module named '{module}'" in notes[-1]


@anyio_mark
async def test_result_that_cannot_be_rebuilt_is_not_shareable(
    worker_only: tuple[str, str],
) -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(NotShareableError) as excinfo:
            await pool.run_sync(fx.return_worker_only, *worker_only)
        assert await pool.run_sync(fx.quota_at, 2, 0) == 2
    error = excinfo.value
    assert "_funcs_exceptions.return_worker_only" in str(error)
    assert "cannot be rebuilt in the caller" in str(error)
    assert isinstance(error.__cause__, ModuleNotFoundError)
    (note,) = _notes(error)
    assert "_funcs_exceptions.return_worker_only" in note
    assert "ModuleNotFoundError" in note


@anyio_mark
async def test_map_batch_result_that_cannot_be_rebuilt_is_not_shareable(
    worker_only: tuple[str, str],
) -> None:
    directory, module = worker_only
    async with InterpreterPool(1) as pool:

        async def consume() -> None:
            func = functools.partial(fx.return_worker_only, directory)
            async for _ in pool.map(func, [module, module], chunksize=2):
                pass  # pragma: no cover - the batch fails

        with pytest.raises(NotShareableError) as excinfo:
            await consume()
    assert "_funcs_exceptions.return_worker_only" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, ModuleNotFoundError)
    assert "raised by the batch of items 0 to 1" in _notes(excinfo.value)[-1]


def test_exception_class_of_main_script() -> None:
    script = Path(__file__).parents[1] / "scripts" / "main_exceptions.py"
    process = subprocess.run(
        [sys.executable, str(script)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=100,  # hang guard
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    assert process.stdout.splitlines() == [
        f"{backend} __main__.OverBudget red 12 red spent 12"
        for backend in ("asyncio", "trio")
    ]


# -- StopIteration and StopAsyncIteration ---------------------------------------------


def test_stop_iteration_from_executor_future_as_thread_pool_does() -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as threads:
        expected = threads.submit(fx.raise_stop_iteration, 7).exception()
    assert type(expected) is StopIteration
    with aiointerp.InterpreterExecutor(1) as executor:
        exc = executor.submit(fx.raise_stop_iteration, 7).exception(timeout=60)
        remote = executor.submit(fx.raise_runtime_error_from_stop_iteration)
        inner = remote.exception(timeout=60)
    assert type(exc) is StopIteration
    assert exc.value == 7
    assert isinstance(exc.__cause__, RemoteTraceback)
    # a RuntimeError the interpreter raised from a StopIteration stays as it is
    assert type(inner) is RuntimeError
    assert type(inner.__cause__) is StopIteration
    assert inner.__cause__.value == "inner"


@anyio_mark
@pytest.mark.parametrize("chunksize", [1, 3])
async def test_stop_async_iteration_in_map_is_an_error(chunksize: int) -> None:
    results: list[int] = []
    async with InterpreterPool(2) as pool:

        async def consume() -> None:
            async for value in pool.map(
                functools.partial(fx.stop_async_iteration_at, stop_at=4),
                range(10),
                chunksize=chunksize,
                max_in_flight=1,
            ):
                results.append(value)

        with pytest.raises(RuntimeError, match="StopAsyncIteration") as excinfo:
            await consume()
    assert results == [0, 10, 20, 30]  # not silently truncated: the error follows
    cause = excinfo.value.__cause__
    assert type(cause) is StopAsyncIteration
    assert any("raised by item 4" in note for note in _notes(cause))


# -- faults: exceptions that fight their own encoding, and our own defects ------------


@anyio_mark
async def test_state_that_cannot_be_copied_once_is_copied_again() -> None:
    # the built-in __reduce__'s state cannot be copied: its __dict__ is read again
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.QuotaExceeded) as excinfo:
            await pool.run_sync(fx.raise_with_refusing_dict, 1)
    assert (excinfo.value.user, excinfo.value.used) == ("kim", 2)


@anyio_mark
@pytest.mark.parametrize("refusal", [False, True])
async def test_exception_that_cannot_be_encoded_becomes_remote_error(
    refusal: bool,
) -> None:
    # its state never copies: encoding fails (a defect, as far as the worker knows);
    # the worker survives and sends the name and str(), a refusal of subinterpreters
    # included (then reported as the ImportError it is, not as a refusal)
    async with InterpreterPool(1) as pool:
        with pytest.raises(RemoteError) as excinfo:
            await pool.run_sync(fx.raise_with_refusing_dict, 10**9, refusal)
        assert await pool.run_sync(fx.quota_at, 1, 0) == 1  # the worker serves on
    expected = "ImportError" if refusal else "_funcs_exceptions.QuotaExceeded"
    assert excinfo.value.type_name == expected


@anyio_mark
async def test_own_reduce_that_makes_a_base_exception_becomes_remote_error() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(RemoteError) as excinfo:
            await pool.run_sync(fx.raise_becomes_keyboard_interrupt)
    assert excinfo.value.type_name == "_funcs_exceptions.BecomesKeyboardInterrupt"
    assert (
        "it is not an Exception in this process" in _aiointerp_notes(excinfo.value)[-1]
    )


@anyio_mark
async def test_exception_refusing_its_chain_is_rebuilt_without_it() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.raises(fx.ChainRefused) as excinfo:
            await pool.run_sync(fx.raise_chain_refused)
    cause = excinfo.value.__cause__
    assert type(cause) is ValueError  # its own property's, not the rebuilt record
    assert str(cause) == "the real cause"
    assert isinstance(cause.__cause__, RemoteTraceback)


def test_a_defect_of_rebuild_gives_a_remote_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiointerp._wire import _exceptions, _rebuild

    def defect(*args: object) -> BaseException:
        raise RuntimeError("a defect")

    monkeypatch.setattr(_rebuild, "_create", defect)
    exc = _rebuild.rebuild(_exceptions.encode(KeyError("k")), "remote text")
    assert type(exc) is RemoteError
    assert (exc.type_name, exc.remote_traceback) == ("KeyError", "remote text")
    assert _aiointerp_notes(exc) == [
        "aiointerp: KeyError could not be rebuilt here (RuntimeError: a defect)"
    ]
    assert isinstance(exc.__cause__, RemoteTraceback)
