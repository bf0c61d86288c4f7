"""@offload: an async twin of a module-level sync function, run in an interpreter."""

from __future__ import annotations

import inspect
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import _funcs_integrations as funcs
import anyio
import pytest
from conftest import child_env

import aiointerp
from aiointerp._wire import _interp

pytestmark = pytest.mark.anyio


async def test_call_with_positional_and_keyword_arguments() -> None:
    assert await funcs.add(1) == 1
    assert await funcs.add(1, 2) == 3
    assert await funcs.add(1, b=2, scale=3) == 9


async def test_runs_in_another_interpreter() -> None:
    assert await funcs.interp_id() != _interp.current_id()


def test_wrapper_keeps_the_signature_and_the_original() -> None:
    assert inspect.iscoroutinefunction(funcs.add)
    assert str(inspect.signature(funcs.add)) == str(
        inspect.signature(funcs.add.__wrapped__)  # type: ignore[attr-defined]
    )
    assert funcs.add.__name__ == "add"
    assert funcs.add.__doc__ == funcs.add.__wrapped__.__doc__  # type: ignore[attr-defined]
    original = funcs.add.__wrapped__  # type: ignore[attr-defined]
    assert not inspect.iscoroutinefunction(original)
    assert original(1, 2, scale=2) == 6  # still callable synchronously
    assert original.__qualname__ == "add"  # left untouched
    assert aiointerp.offload.__module__ == "aiointerp"


def test_the_reference_sent_to_workers_pickles_to_the_original() -> None:
    from aiointerp._offload import _sendable

    ref = _sendable(funcs.add, funcs.add.__wrapped__)  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(ref)) is funcs.add.__wrapped__  # type: ignore[attr-defined]
    assert "add" in repr(ref)
    assert ref(2, 3) == 5


async def test_offload_without_rebinding_the_name() -> None:
    # the module attribute is the original: it is sent as it is
    assert await funcs.offloaded_copy() != _interp.current_id()


async def test_decorator_stacked_above_offload() -> None:
    assert await funcs.triple(5) == 15


async def test_method_of_a_module_level_class() -> None:
    assert await funcs.Scaler(4).scale(5) == 20


async def test_explicit_pool() -> None:
    async with aiointerp.InterpreterPool(1) as pool:
        in_pool = aiointerp.offload(pool=pool)(funcs.plain_interp_id)
        assert await in_pool() != _interp.current_id()
        assert pool.stats().completed == 1


async def test_cancellation_interrupts_the_call() -> None:
    started_r, started_w = os.pipe()
    stopped_r, stopped_w = os.pipe()
    try:
        async with aiointerp.InterpreterPool(1, cancel_grace=30) as pool:
            spin = aiointerp.offload(pool=pool)(funcs.spin_until_interrupted)
            async with anyio.create_task_group() as tg:
                tg.start_soon(spin, (started_w, stopped_w))
                with anyio.fail_after(30):
                    await anyio.wait_readable(started_r)
                tg.cancel_scope.cancel()
            assert os.read(stopped_r, 1) == b"I"
            assert pool.stats().cancelled == 1
    finally:
        for fd in (started_r, started_w, stopped_r, stopped_w):
            os.close(fd)


async def test_timeout() -> None:
    started_r, started_w = os.pipe()
    stopped_r, stopped_w = os.pipe()
    try:
        async with aiointerp.InterpreterPool(1, cancel_grace=30) as pool:
            await pool.run_sync(funcs.square, 2)  # a warm worker, module imported
            spin = aiointerp.offload(pool=pool, timeout=0.2)(
                funcs.spin_until_interrupted
            )
            with pytest.raises(TimeoutError):
                await spin((started_w, stopped_w))
            assert pool.stats().timed_out == 1
            # on a loaded machine the deadline may pass before the code starts
            os.set_blocking(started_r, False)
            os.set_blocking(stopped_r, False)
            if os.read(started_r, 1) == b"S":
                assert os.read(stopped_r, 1) == b"I"  # interrupted, not left running
    finally:
        for fd in (started_r, started_w, stopped_r, stopped_w):
            os.close(fd)


def test_rejects_async_functions_and_bad_options() -> None:
    async def coro() -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        aiointerp.offload(coro)
    with pytest.raises(TypeError, match="callable"):
        aiointerp.offload(42)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="timeout"):
        aiointerp.offload(timeout=-1)(funcs.plain_interp_id)


async def test_local_function_needs_cloudpickle() -> None:
    def local(x: int) -> int:
        return x + 1

    # defined inside a function: sent by value (cloudpickle is installed here)
    assert await aiointerp.offload(local)(1) == 2


SCRIPT = """
from __future__ import annotations

import anyio

import aiointerp
from aiointerp._wire import _interp


@aiointerp.offload
def power(base: int, *, exp: int = 2) -> tuple[int, int]:
    return base**exp, _interp.current_id()


async def main() -> None:
    value, where = await power(2, exp=10)
    assert where != _interp.current_id()
    print("result", value, (await power(3))[0])


if __name__ == "__main__":
    for backend in ("asyncio", "trio"):
        anyio.run(main, backend=backend)
"""


def test_offload_in_a_main_script(tmp_path: Path) -> None:
    script = tmp_path / "offload_script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["result 1024 9", "result 1024 9"]
    assert done.stderr == ""


async def test_workers_do_not_import_anyio() -> None:
    # the worker imported _funcs_integrations, which uses @offload at import time
    assert await funcs.offloaded_libraries_loaded() == ()
