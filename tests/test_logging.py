"""Log records and warnings from inside worker interpreters reach the host's logging.

Real interpreters on every event loop; the host side is observed through pytest's
``caplog`` (a handler on the host's root logger) and ``pytest.warns``.
"""

from __future__ import annotations

import logging
import warnings

import _funcs_logging as funcs
import anyio
import pytest

from aiointerp import InterpreterPool

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
