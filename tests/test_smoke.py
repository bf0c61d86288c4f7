from __future__ import annotations

import operator

import pytest

import aiointerp

pytestmark = pytest.mark.anyio


async def test_round_trip() -> None:
    assert await aiointerp.run_sync_in_interpreter(operator.add, 1, 2) == 3
    async with aiointerp.InterpreterPool(1) as pool:
        assert await pool.run_sync(operator.mul, 6, 7) == 42
