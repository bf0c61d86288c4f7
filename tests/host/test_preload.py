"""``preload`` and the opening of a pool that has one (or an initializer): fail fast.

A pool with ``preload`` or ``initializer`` opens only once ``max(min_idle, 1)``
workers have started; a worker that cannot start fails the opening at once with
:class:`BrokenWorkerError` (the worker's exception as its cause, the module named),
and the pool closes instead of retrying behind a successful opening.
"""

from __future__ import annotations

import logging
import os

import _funcs_preload as f
import anyio
import pytest
from _handshake import pipe

import aiointerp
from aiointerp import BrokenWorkerError, InterpreterPool, PoolClosedError

pytestmark = pytest.mark.anyio

HANG_GUARD = 30.0
KINDS = pytest.mark.parametrize("kind", ["interpreter", "process"])
#: a stdlib module that neither the host's tests nor a worker's bootstrap import
UNUSED = "colorsys"


@KINDS
async def test_preload_imports_before_the_initializer_and_the_calls(kind: str) -> None:
    async with InterpreterPool(
        2,
        min_idle=2,
        kind=kind,
        preload=(UNUSED, "_funcs_preload"),
        initializer=f.init_note_modules,
        initargs=(UNUSED,),
    ) as pool:
        stats = pool.stats()
        assert (stats.created, stats.idle) == (2, 2)  # opened with min_idle ready
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(pool.run_sync, f.loaded, UNUSED)
        assert await pool.run_sync(f.loaded, UNUSED)
        assert await pool.run_sync(f.seen_by_initializer) == {UNUSED: True}
        assert pool.stats().created == 2


async def test_opens_with_one_worker_without_min_idle() -> None:
    async with InterpreterPool(2, preload=[UNUSED]) as pool:  # any iterable
        stats = pool.stats()
        assert (stats.created, stats.idle, stats.starting) == (1, 1, 0)
        assert await pool.run_sync(f.loaded, UNUSED)
        assert pool.stats().created == 1  # the first call took the warm worker


@KINDS
async def test_a_missing_module_fails_the_opening(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiointerp")
    pool = InterpreterPool(2, min_idle=2, kind=kind, preload=("_preload_broken",))
    with anyio.fail_after(HANG_GUARD), pytest.raises(BrokenWorkerError) as info:
        async with pool:
            pytest.fail("the pool opened")
    error = info.value
    assert f"a new {kind} worker could not import '_preload_broken'" in str(error)
    assert "_aiointerp_tests_no_such_module" in str(error)
    cause = error.__cause__
    assert type(cause) is ModuleNotFoundError
    assert cause.name == "_aiointerp_tests_no_such_module"
    assert any("preload" in note for note in cause.__notes__)
    assert isinstance(cause.__cause__, aiointerp.RemoteTraceback)
    assert "_preload_broken.py" in cause.__cause__.text
    # the opening raised it: not logged, and never retried
    assert not [r for r in caplog.records if r.name.startswith("aiointerp")]
    with pytest.raises(PoolClosedError, match="could not start") as closed:
        await pool.run_sync(f.loaded, UNUSED)
    assert closed.value.__cause__ is error
    assert pool.stats().workers == 0


async def test_a_module_refused_by_interpreters_loads_in_processes() -> None:
    with anyio.fail_after(HANG_GUARD), pytest.raises(BrokenWorkerError) as info:
        async with InterpreterPool(1, preload=("_preload_refused",)):
            pytest.fail("the pool opened")
    assert "could not import '_preload_refused' (preload)" in str(info.value)
    assert "which does not support subinterpreters" in str(info.value)
    assert type(info.value.__cause__) is ImportError
    async with InterpreterPool(1, kind="process", preload=("_preload_refused",)) as p:
        assert await p.run_sync(f.loaded, "_preload_refused")


async def test_a_real_refusal_names_the_module_and_the_way_out() -> None:
    # readline refuses subinterpreters (single-phase initialisation)
    with anyio.fail_after(HANG_GUARD), pytest.raises(BrokenWorkerError) as info:
        async with InterpreterPool(1, preload=("readline",)):
            pytest.fail("the pool opened")
    assert "could not import 'readline' (preload)" in str(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, ImportError)
    assert str(cause).startswith("the pool's preload imports readline, which does")
    assert "kind='process'" in str(cause)


async def test_auto_runs_everything_in_processes_when_preload_refuses_interpreters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aiointerp")
    with anyio.fail_after(HANG_GUARD):
        async with InterpreterPool(2, kind="auto", preload=("readline",)) as pool:
            assert await pool.run_sync(f.loaded, "readline")
            stats = pool.stats()
    assert (stats.interpreters, stats.processes, stats.failed) == (0, 1, 0)
    [dropped] = [r for r in caplog.records if getattr(r, "event", "") == "kind_dropped"]
    assert (dropped.worker_kind, dropped.refused_module) == ("interpreter", "readline")


async def test_the_first_call_opens_the_pool_and_fails_fast() -> None:
    pool = InterpreterPool(1, preload=("_preload_broken",))
    errors: list[BaseException] = []

    async def call() -> None:
        try:
            await pool.run_sync(f.loaded, UNUSED)
        except aiointerp.AiointerpError as exc:
            errors.append(exc)

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            for _ in range(3):  # the first opens it; the others wait for the opening
                tg.start_soon(call)
    opener = next(e for e in errors if isinstance(e, BrokenWorkerError))
    assert type(opener.__cause__) is ModuleNotFoundError
    others = [e for e in errors if e is not opener]
    assert len(others) == 2
    assert all(type(e) is PoolClosedError and e.__cause__ is opener for e in others)
    await pool.aclose()  # harmless


async def test_cancelled_while_opening_closes_the_pool() -> None:
    with pipe() as (started_r, started_w), pipe() as (release_r, release_w):
        pool = InterpreterPool(
            1, initializer=f.init_block, initargs=(started_w, release_r)
        )
        opening = anyio.CancelScope()

        async def open_it() -> None:
            with opening:
                async with pool:
                    pytest.fail("the pool opened")

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tg:
                tg.start_soon(open_it)
                await anyio.wait_readable(started_r)  # the initializer runs
                opening.cancel()
                os.write(release_w, b"r")  # let the interpreter end
    assert opening.cancelled_caught
    with pytest.raises(PoolClosedError):
        await pool.run_sync(f.loaded, UNUSED)


async def test_a_cancelled_first_call_leaves_the_opening_to_the_next() -> None:
    with pipe() as (started_r, started_w), pipe() as (release_r, release_w):
        pool = InterpreterPool(
            1, initializer=f.init_block, initargs=(started_w, release_r)
        )
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tg:
                first = anyio.CancelScope()

                async def call() -> None:
                    with first:
                        await pool.run_sync(f.loaded, UNUSED)  # it opens the pool

                tg.start_soon(call)
                await anyio.wait_readable(started_r)  # the initializer runs
                first.cancel()
            assert first.cancelled_caught
            os.write(release_w, b"r")  # the worker starts: the pool is open
            assert await pool.run_sync(f.loaded, UNUSED) is False
        stats = pool.stats()
        assert (stats.created, stats.completed, stats.cancelled) == (1, 1, 0)
        await pool.aclose()


async def test_pools_without_preload_or_initializer_open_at_once() -> None:
    # min_idle workers start in the background; the opening does not wait for them
    async with InterpreterPool(1, min_idle=1) as pool:
        assert await pool.run_sync(f.loaded, UNUSED) is False


@pytest.mark.parametrize(
    ("preload", "message"),
    [
        ("mod", "not one string"),
        ([1], "module names"),
        (["ok", ""], "module names"),
    ],
)
def test_preload_is_validated(preload: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        InterpreterPool(preload=preload)  # type: ignore[arg-type]
