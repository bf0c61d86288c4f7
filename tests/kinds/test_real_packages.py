"""numpy, Pillow and pydantic, which isolated interpreters refuse, in process workers.

Real packages, real child processes (tests/_funcs_packages.py imports all three at
its top, as application code does): results come back correct, a numpy loop
interrupted by a timeout runs its ``finally``, a single long numpy C call is killed
after ``cancel_grace`` and its slot freed, a pydantic ``ValidationError`` keeps its
type. Each test runs with ``kind="process"`` and again with ``kind="auto"``, which
must send these functions to a process; the ``auto`` variants are skipped while
``InterpreterPool(kind="auto")`` raises :class:`NotImplementedError`. Handshakes go
through a FIFO; timeouts only guard against hangs, except where a timeout or
``cancel_grace`` is what is under test.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import _funcs_packages as funcs
import anyio
import numpy as np
import pydantic
import pytest
from _handshake import HANG, LONG_GRACE, text, wait_started
from PIL import Image

from aiointerp import InterpreterPool, RemoteTraceback

pytestmark = pytest.mark.anyio


def _auto_is_implemented() -> bool:
    try:
        InterpreterPool(kind="auto")
    except NotImplementedError:
        return False
    return True


KINDS = [
    pytest.param("process"),
    pytest.param(
        "auto",
        marks=pytest.mark.skipif(
            not _auto_is_implemented(),
            reason='InterpreterPool(kind="auto") raises NotImplementedError: the '
            "auto variants run once it is implemented",
        ),
    ),
]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def pool_of(
    kind: str, max_workers: int = 2, **options: Any
) -> AsyncIterator[InterpreterPool]:
    """A pool of *kind*; with ``auto``, the calls must have gone to processes."""
    async with InterpreterPool(max_workers, kind=kind, **options) as pool:
        yield pool
        if kind == "auto":
            assert pool.stats().processes >= 1


@contextmanager
def fifo(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A FIFO for handshakes: its path for the worker, a non-blocking fd for the test."""
    path = tmp_path / "handshake"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # never at EOF: we hold a writer
    try:
        yield str(path), fd
    finally:
        os.close(fd)


def handshake_pid(fd: int) -> int:
    """The pid the code wrote on the FIFO (it must have: never blocks)."""
    data = os.read(fd, 8)
    assert len(data) == 8
    return int.from_bytes(data, "little")


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


async def wait_gone(pid: int) -> None:
    with anyio.fail_after(HANG):
        while not process_gone(pid):  # noqa: ASYNC110 - /proc has no event to wait for
            await anyio.sleep(0.01)  # polling, under a hang guard


# -- numpy -------------------------------------------------------------------------------


async def test_numpy_results(kind: str) -> None:
    rng = np.random.default_rng(17)
    a = rng.standard_normal((300, 40))
    m = rng.standard_normal((50, 50))
    b = rng.standard_normal(50)
    big = rng.standard_normal((2000, 1000))  # 16 MB each way: more than a pipe holds
    async with pool_of(kind) as pool:
        assert await pool.run_sync(funcs.pid) != os.getpid()
        mean, sums, gram = await pool.run_sync(funcs.summarise, a)
        assert mean == pytest.approx(float(a.mean()), rel=1e-12)
        np.testing.assert_allclose(sums, a.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(gram, a.T @ a, rtol=1e-12)
        x = await pool.run_sync(funcs.solve, m, b)
        np.testing.assert_allclose(m @ x, b, atol=1e-9)
        doubled = await pool.run_sync(funcs.scaled, big, 2.0)
        assert (doubled.dtype, doubled.shape) == (big.dtype, big.shape)
        np.testing.assert_array_equal(doubled, big * 2.0)
        with pytest.raises(np.linalg.LinAlgError, match="Singular") as info:
            await pool.run_sync(funcs.solve, np.zeros((3, 3)), np.ones(3))
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert "solve" in info.value.__cause__.text


async def test_numpy_loop_interrupted_by_timeout_runs_its_finally(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "cleanup"
    # auto tries an interpreter first on a function's first call: a longer timeout
    timeout = 1.0 if kind == "process" else 3.0
    async with pool_of(kind, 1, cancel_grace=LONG_GRACE) as pool:
        await pool.run_sync(
            funcs.pid
        )  # warm, numpy imported: the timeout is for the code
        with fifo(tmp_path) as (name, fd):
            with pytest.raises(TimeoutError):
                await pool.run_sync(funcs.numpy_loop, name, str(path), timeout=timeout)
            looped = handshake_pid(fd)  # the loop ran before the timeout
        assert text(path) == "Interrupted\nfinally\n"
        stats = pool.stats()
        assert (stats.timed_out, stats.abandoned, stats.busy) == (1, 0, 0)
        assert await pool.run_sync(funcs.pid) != looped  # interrupted: replaced


async def test_long_numpy_c_call_is_killed_after_cancel_grace(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "cleanup"
    async with pool_of(kind, 1, cancel_grace=0.2) as pool:
        with fifo(tmp_path) as (name, fd):
            pids: list[int] = []
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    pids.append(await wait_started(fd))
                    scope.cancel()

                with anyio.fail_after(HANG):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(cancel)
                        await pool.run_sync(funcs.long_c_call, name, str(path))
            assert scope.cancelled_caught
        stats = pool.stats()
        assert (stats.abandoned, stats.cancelled, stats.busy) == (1, 1, 0)
        assert stats.quarantined == 0  # killed, not waited for
        if kind == "process":
            assert stats.workers == 0
        with anyio.fail_after(HANG):  # the only slot is free
            assert await pool.run_sync(funcs.pid) != pids[0]
        await wait_gone(pids[0])
        assert text(path) == ""  # killed inside the C call: no cleanup could run


# -- Pillow ------------------------------------------------------------------------------


def _picture() -> Image.Image:
    image = Image.linear_gradient("L").resize((320, 200)).convert("RGB")
    image.paste((200, 30, 30), (40, 40, 120, 160))
    return image


async def test_pillow_image_ops(kind: str) -> None:
    picture = _picture()
    out = io.BytesIO()
    picture.save(out, format="PNG")
    png = out.getvalue()
    async with pool_of(kind) as pool:
        thumbnail = await pool.run_sync(funcs.thumbnail_png, png, (64, 64))
        rotated = await pool.run_sync(funcs.rotated, picture, 90)  # an Image both ways
    expected = funcs.thumbnail_png(png, (64, 64))  # the same code, here
    with (
        Image.open(io.BytesIO(thumbnail)) as got,
        Image.open(io.BytesIO(expected)) as want,
    ):
        assert (got.mode, got.size) == ("L", (64, 40))
        assert got.tobytes() == want.tobytes()
    assert isinstance(rotated, Image.Image)
    assert (rotated.mode, rotated.size) == ("RGB", (200, 320))
    assert rotated.tobytes() == picture.rotate(90, expand=True).tobytes()


# -- pydantic ----------------------------------------------------------------------------

GOOD = {
    "name": " Ada ",
    "age": 36,
    "address": {"city": "London", "postcode": "12345"},
    "tags": ["maths"],
}
BAD = {"name": "  ", "age": -1, "address": {"city": "Paris", "postcode": "7500"}}


async def test_pydantic_validation(kind: str) -> None:
    async with pool_of(kind) as pool:
        user = await pool.run_sync(funcs.validate_user, GOOD)
        users = await pool.run_sync(funcs.validate_users_json, json.dumps([GOOD] * 3))
        with pytest.raises(pydantic.ValidationError) as info:
            await pool.run_sync(funcs.validate_user, BAD)
    assert type(user) is funcs.User
    assert user == funcs.User.model_validate(GOOD)
    assert (user.name, user.address.postcode) == ("Ada", "12345")
    assert users == [user] * 3
    error = info.value
    assert type(error) is pydantic.ValidationError
    assert error.title == "User"
    assert [(e["loc"], e["type"]) for e in error.errors()] == [
        (("name",), "value_error"),
        (("age",), "greater_than"),
        (("address", "postcode"), "string_pattern_mismatch"),
    ]
    with pytest.raises(pydantic.ValidationError) as here:
        funcs.validate_user(BAD)
    assert error.errors(include_context=False) == here.value.errors(
        include_context=False
    )
    assert str(error) == str(here.value)
    assert isinstance(error.__cause__, RemoteTraceback)
    assert "validate_user" in error.__cause__.text
