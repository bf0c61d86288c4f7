"""A worker whose bootstrap fails: the caller gets BrokenWorkerError, nothing leaks."""

from __future__ import annotations

import operator

import anyio
import pytest

import aiointerp
from aiointerp import _pool
from aiointerp._kinds import _config

pytestmark = pytest.mark.anyio


async def test_failed_bootstrap_is_broken_and_leaks_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an empty sys.path: the worker cannot import aiointerp, its exec fails at once
    real = _config.worker_config
    monkeypatch.setattr(
        _pool,
        "worker_config",
        lambda *args: real(*args)._replace(sys_path=()),
    )
    async with aiointerp.InterpreterPool(1) as pool:
        with anyio.fail_after(30), pytest.raises(aiointerp.BrokenWorkerError) as info:
            await pool.run_sync(operator.add, 1, 2)
        assert "aiointerp" in str(info.value)
        stats = pool.stats()
        assert (stats.completed, stats.created) == (0, 0)
    # the autouse no_leaks fixture checks the failed worker's pipes were closed
