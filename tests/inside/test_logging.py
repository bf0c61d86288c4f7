"""Log records and warnings from inside worker interpreters reach the host's logging.

Real interpreters on every event loop; the host side is observed through pytest's
``caplog`` (a handler on the host's root logger) and ``pytest.warns``.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import _funcs_import_hook as late
import _funcs_logging as funcs
import anyio
import pytest
from _handshake import fifo, wait_byte

from aiointerp import InterpreterPool
from aiointerp._inside import _logs

pytestmark = pytest.mark.anyio

NAME = "aiointerp_tests.worker"


def records(
    caplog: pytest.LogCaptureFixture, prefix: str = "aiointerp_tests"
) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(prefix)]


async def test_records_reach_the_host_logger_of_the_same_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with InterpreterPool(1) as pool:
        interp = await pool.run_sync(funcs.log_one, logging.INFO, "value", 42)
        await pool.run_sync(funcs.log_exception)
    first, second = records(caplog)
    assert (first.name, first.levelno, first.getMessage()) == (
        NAME,
        logging.INFO,
        "value 42",
    )
    assert first.interpreter == interp  # type: ignore[attr-defined]
    assert (first.order_id, first.tag) == (42, "x")  # type: ignore[attr-defined]
    assert first.funcName == "log_one"
    assert first.pathname == funcs.__file__
    assert second.levelno == logging.ERROR
    assert second.exc_text is not None
    assert "ZeroDivisionError: division by zero" in second.exc_text
    assert "ZeroDivisionError" in caplog.text  # the host's formatter shows it


async def test_levels_follow_the_host(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.ERROR, logger=NAME)
    async with InterpreterPool(1) as pool:
        # the worker does not even build records the host would drop
        assert not await pool.run_sync(funcs.enabled, NAME, logging.WARNING)
        assert await pool.run_sync(funcs.enabled, NAME, logging.ERROR)
        assert await pool.run_sync(funcs.enabled, "other", logging.WARNING)
        assert not await pool.run_sync(funcs.enabled, "other", logging.INFO)
        first = await pool.run_sync(funcs.log_one, logging.WARNING, "dropped", 1)
        assert records(caplog) == []
        # a change of the host's configuration reaches the same worker
        caplog.set_level(logging.DEBUG, logger=NAME)
        assert await pool.run_sync(funcs.enabled, NAME, logging.DEBUG)
        again = await pool.run_sync(funcs.log_one, logging.DEBUG, "kept", 2)
        assert again == first
        logging.disable(logging.CRITICAL)
        try:
            assert not await pool.run_sync(funcs.enabled, NAME, logging.CRITICAL)
        finally:
            logging.disable(logging.NOTSET)
        assert await pool.run_sync(funcs.enabled, NAME, logging.CRITICAL)
    assert [r.getMessage() for r in records(caplog)] == ["kept 2"]


async def test_nothing_is_lost_when_the_call_ends_right_after_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with InterpreterPool(2) as pool:
        counts = []
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                counts.append(await pool.run_sync(funcs.log_many, 500))
                # every record of the call was handled before its result arrived
                assert len(records(caplog)) >= 500

            for _ in range(2):
                tg.start_soon(call)
    assert counts == [500, 500]
    messages = [r.getMessage() for r in records(caplog)]
    assert sorted(messages) == sorted([f"record {i}" for i in range(500)] * 2)


async def test_records_of_threads_inside_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with InterpreterPool(1) as pool:
        await pool.run_sync(funcs.log_from_threads, 4)
    names = sorted(r.name for r in records(caplog))
    assert names == [f"aiointerp_tests.thread{n}" for n in range(4)]


async def test_records_of_the_initializer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with InterpreterPool(1, initializer=funcs.log_in_initializer) as pool:
        await pool.run_sync(funcs.root_handlers)
    assert [r.getMessage() for r in records(caplog)] == ["initializer ran"]


async def test_warnings_are_issued_again_in_the_host() -> None:
    async with InterpreterPool(1) as pool:
        with pytest.warns(funcs.CustomWarning, match="^custom careful$") as caught:
            await pool.run_sync(funcs.warn, "custom careful", True)
        with pytest.warns(UserWarning, match="^plain$"):
            await pool.run_sync(funcs.warn, "plain", False)
    (warning,) = caught
    assert warning.filename == funcs.__file__
    assert warning.category is funcs.CustomWarning


async def test_warning_made_an_error_by_the_host_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with InterpreterPool(1) as pool:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            interp = await pool.run_sync(funcs.warn, "now an error", False)
    (record,) = [r for r in caplog.records if r.name == "py.warnings"]
    assert record.levelno == logging.ERROR
    assert "now an error" in record.getMessage()
    assert f"in interpreter {interp}" in record.getMessage()


async def test_forward_logging_false(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with InterpreterPool(1, forward_logging=False) as pool:
        assert await pool.run_sync(funcs.root_handlers) == 0
        await pool.run_sync(funcs.log_one, logging.ERROR, "unseen", 1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await pool.run_sync(funcs.warn, "unseen", False)
    assert records(caplog) == []
    assert caught == []


class _RaisingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        raise ValueError("the host's filter failed")


@pytest.mark.parametrize("raise_exceptions", [True, False])
async def test_a_raising_host_filter_does_not_stop_the_call(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    raise_exceptions: bool,
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", raise_exceptions)
    handler = logging.Handler()
    handler.addFilter(_RaisingFilter())
    host = logging.getLogger(NAME)
    host.addHandler(handler)
    try:
        async with InterpreterPool(1) as pool:
            first = await pool.run_sync(funcs.log_one, logging.WARNING, "value", 1)
            again = await pool.run_sync(funcs.log_one, logging.WARNING, "value", 2)
            stats = pool.stats()
    finally:
        host.removeHandler(handler)
    assert first == again  # the same interpreter: neither interrupted nor retired
    assert (stats.completed, stats.failed, stats.retired) == (2, 0, 0)
    assert (stats.cancelled, stats.abandoned) == (0, 0)
    # reported as logging reports a failing handler: once per record, to stderr
    err = capsys.readouterr().err
    if raise_exceptions:
        assert err.count("--- Logging error ---") == 2, err
        assert err.count("ValueError: the host's filter failed") == 2, err
        assert "Message: 'value 1'" in err, err
    else:
        assert "Logging error" not in err, err


async def test_a_raising_host_showwarning_does_not_stop_the_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def showwarning(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the host's showwarning failed")

    async with InterpreterPool(1) as pool:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = showwarning
            first = await pool.run_sync(funcs.warn, "careful 1", False)
            again = await pool.run_sync(funcs.warn, "careful 2", False)
        stats = pool.stats()
    assert first == again
    assert (stats.completed, stats.failed, stats.retired) == (2, 0, 0)
    err = capsys.readouterr().err
    assert err.count("RuntimeError: the host's showwarning failed") == 2, err
    assert "Message: 'UserWarning: careful 1'" in err, err


async def test_records_and_warnings_of_concurrent_threads_arrive_before_the_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 16 threads, 5 calls: before the fix 70 to 100 % of such calls lost items
    threads, count, calls = 16, 500, 5
    logging_threads, warning_threads = range(0, threads, 2), range(1, threads, 2)
    seen: list[str] = []

    class Collect(logging.Filter):  # cheap: the host drains as fast as it can
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append(f"{record.name} {record.getMessage()}")
            return False

    loggers = [
        logging.getLogger(f"aiointerp_tests.concurrent{n}") for n in logging_threads
    ]
    collect = Collect()
    for host in loggers:
        host.addFilter(collect)
    try:
        async with InterpreterPool(1) as pool:
            for _ in range(calls):
                seen.clear()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    total = await pool.run_sync(
                        funcs.report_concurrently, threads, count
                    )
                    # all of them, when the call returns
                    assert len(seen) + len(caught) == total
                assert sorted(str(w.message) for w in caught) == sorted(
                    f"thread {n} warning {i}"
                    for n in warning_threads
                    for i in range(count)
                )
                assert sorted(seen) == sorted(
                    f"aiointerp_tests.concurrent{n} record {i}"
                    for n in logging_threads
                    for i in range(count)
                )
    finally:
        for host in loggers:
            host.removeFilter(collect)


def pending(fd: int) -> bytes:
    """What the pipe holds now (never blocks)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 16)
    except BlockingIOError:
        return b""


def test_a_send_inside_a_send_wakes_the_host() -> None:
    """Bookkeeping (beside the real test above): a record logged by a ``__del__``
    that the garbage collector runs in the middle of queueing another record."""
    queue: list[object] = []
    read_fd, write_fd = os.pipe()
    try:

        def put(item: object) -> None:
            queue.append(item)
            if len(queue) == 1:  # the outer item is queued: the inner send runs
                forwarding.send(("inner",))

        forwarding = _logs.Forwarding(put, queue.__len__, write_fd, (30, 0, ()))
        forwarding.send(("outer",))
        assert b"L" in pending(read_fd)
        assert queue == [("outer",), ("inner",)]
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_two_threads_that_send_at_once_wake_the_host() -> None:
    """Bookkeeping (beside the real test above): thread B queues an item while
    thread A is between its put and its look at the queue's size."""
    queue: list[object] = []
    changed = threading.Condition()
    b_acquiring = b_done = False

    class Watched:  # the forwarding's lock, telling when B waits for it
        def __init__(self, lock: Any) -> None:
            self.lock = lock

        def __enter__(self) -> object:
            nonlocal b_acquiring
            if threading.current_thread() is b:
                with changed:
                    b_acquiring = True
                    changed.notify_all()
            return self.lock.__enter__()

        def __exit__(self, *exc: object) -> object:
            return self.lock.__exit__(*exc)

    def put(item: object) -> None:
        queue.append(item)
        if item == ("a",):  # A is in put: let B send, until it waits for A or is done
            b.start()
            with changed:
                assert changed.wait_for(lambda: b_acquiring or b_done, timeout=60)

    def send_b() -> None:
        nonlocal b_done
        forwarding.send(("b",))
        with changed:
            b_done = True
            changed.notify_all()

    b = threading.Thread(target=send_b)
    read_fd, write_fd = os.pipe()
    try:
        forwarding = _logs.Forwarding(put, queue.__len__, write_fd, (30, 0, ()))
        lock = getattr(forwarding, "lock", None)  # (None before the fix)
        if lock is not None:
            forwarding.lock = Watched(lock)
        forwarding.send(("a",))
        b.join(60)
        assert pending(read_fd) == b"L"  # the queue held two: one wake-up
        assert queue == [("a",), ("b",)]
    finally:
        os.close(read_fd)
        os.close(write_fd)


@pytest.mark.parametrize("kind", ["interpreter", "process"])
async def test_records_flooded_between_calls(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, kind: str
) -> None:
    """A thread a call left running logs 4,000 records after the call returned.

    An interpreter worker keeps what fits in its budget and drops the rest: one
    warning on the ``aiointerp`` logger says how many, before the next call's own
    records. A process worker's thread waits for the host and loses none.
    """
    caplog.set_level(logging.WARNING)
    count = 4000
    with (
        fifo(tmp_path / "go") as (go, go_fd),
        fifo(tmp_path / "done") as (done, done_fd),
    ):
        async with InterpreterPool(1, kind=kind) as pool:
            await pool.run_sync(funcs.log_flood, count, go, done)
            os.write(go_fd, b"g")  # the call has returned: between calls from here
            if kind == "interpreter":  # nothing blocks its writer: it ends
                await wait_byte(done_fd)
            assert await pool.run_sync(funcs.join_log_flood) == 1
    *flood, last = [r.getMessage() for r in records(caplog)]
    assert last == "joined"  # the call's own record, after the backlog
    expected = [f"flood {i}" for i in range(count)]
    dropped = [r for r in caplog.records if r.name == "aiointerp"]
    if kind == "process":
        assert (flood, dropped) == (expected, [])
        return
    assert 0 < len(flood) < count
    assert flood == expected[: len(flood)]  # the first ones, in order
    (note,) = dropped
    assert note.levelno == logging.WARNING
    assert note.getMessage().startswith(
        f"{count - len(flood)} log records and warnings from interpreter worker "
    )
    # reported before the next call's own record
    assert caplog.records.index(note) < caplog.records.index(records(caplog)[-1])


# -- the worker's import of logging --------------------------------------------------


async def test_logging_imported_before_the_worker_forwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a sitecustomize imports logging before the worker loop starts: no import hook,
    # the worker's logging is configured at once
    (tmp_path / "sitecustomize.py").write_text("import logging\n")
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    caplog.set_level(logging.INFO)
    async with InterpreterPool(1, kind="process") as pool:
        assert await pool.run_sync(late.imported, "sitecustomize")
        await pool.run_sync(funcs.log_one, logging.INFO, "early", 7)
    assert [r.getMessage() for r in records(caplog)] == ["early 7"]


async def test_logging_that_cannot_be_found_is_not_configured() -> None:
    # the hook finds no spec for logging (no finder left): it steps aside, and the
    # import fails as it would without aiointerp
    async with InterpreterPool(1) as pool:
        error = await pool.run_sync(late.import_logging_unfindable)
        assert await pool.run_sync(late.imported, "logging") is False
    assert error == "ModuleNotFoundError: No module named 'logging'"
