"""A script that imports FastAPI at the top, as an app's main module does.

Re-running it in a worker interpreter fails (pydantic_core refuses subinterpreters):
its function goes by value under kind="interpreter", and to a process under
kind="auto" when cloudpickle is blocked (argv[1] == "no-cloudpickle").
"""

import hashlib
import os
import sys

if sys.argv[1:] == ["no-cloudpickle"]:
    sys.modules["cloudpickle"] = None  # type: ignore[assignment]

import anyio
import fastapi  # noqa: F401 - what makes the script refuse subinterpreters

import aiointerp


def crunch(n: int, host: int) -> tuple[str, bool]:
    return hashlib.sha256(str(n).encode()).hexdigest()[:8], os.getpid() == host


async def main() -> None:
    for kind in ("interpreter", "auto"):
        async with aiointerp.InterpreterPool(1, kind=kind) as pool:
            try:
                digest, here = await pool.run_sync(crunch, 3, os.getpid())
            except ImportError as exc:
                print(kind, "ImportError", exc.name)
                continue
            stats = pool.stats()
            where = "this process" if here else "another process"
            print(kind, digest, where, stats.interpreters, stats.processes)


if __name__ == "__main__":
    for backend in ("asyncio", "trio"):
        anyio.run(main, backend=backend)
