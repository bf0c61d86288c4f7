"""A stand-in for the pool's call of ``_mainscript.refuse_nested_use()`` at first use.

Installed by tests/scripts/unguarded_main.py (in the host and in the worker that runs
the script again) while ``InterpreterPool`` does not call it itself.
"""

from __future__ import annotations

from typing import Any

from aiointerp import _mainscript, _pool


def install() -> None:
    pool_class: Any = _pool.InterpreterPool
    original = pool_class._ensure_running
    if getattr(original, "double", False):
        return

    async def ensure_running(self: Any) -> None:
        _mainscript.refuse_nested_use()
        await original(self)

    ensure_running.double = True  # type: ignore[attr-defined]
    pool_class._ensure_running = ensure_running
