"""Lambdas and closures without cloudpickle: a clear NotShareableError, no worker used.

Blocks cloudpickle before aiointerp is imported, as if it were not installed.
"""

from __future__ import annotations

import sys

sys.modules["cloudpickle"] = None  # type: ignore[assignment]

import anyio  # noqa: E402

import aiointerp  # noqa: E402


def make_closure(offset: int) -> object:
    def add_offset(value: int) -> int:
        return value + offset

    return add_offset


async def main() -> list[str]:
    messages = []
    async with aiointerp.InterpreterPool(1) as pool:
        for func in (lambda value: value, make_closure(1)):
            try:
                await pool.run_sync(func, 1)  # type: ignore[arg-type]
            except aiointerp.NotShareableError as exc:
                messages.append(str(exc))
            else:
                raise AssertionError(f"{func!r} was sent without cloudpickle")
        assert pool.stats().created == 0, pool.stats()
        assert await pool.run_sync(abs, -1) == 1  # by reference still works
    return messages


if __name__ == "__main__":
    for backend in ("asyncio", "trio"):
        for message in anyio.run(main, backend=backend):
            print(f"{backend}: {message}")
    assert "cloudpickle" not in {
        name for name, module in sys.modules.items() if module is not None
    }
