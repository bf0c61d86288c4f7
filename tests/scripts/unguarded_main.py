"""A program whose top-level code is NOT guarded by ``if __name__ == "__main__":``.

Workers run this file again (as ``__mp_main__``) to find ``double``; unguarded, the
whole program then runs again inside the worker, whose pool must refuse to start.
``UNGUARDED_BACKEND`` (``asyncio`` or ``trio``) picks how the program runs;
``UNGUARDED_CALLS`` makes that many calls, the last one uncaught, through one worker.
"""

import asyncio
import os

import aiointerp
from aiointerp._wire import _interp

print(f"top-level code runs in interpreter {_interp.current_id()}", flush=True)


def double(x: int) -> int:
    return 2 * x


async def main() -> None:
    async with aiointerp.InterpreterPool(1) as pool:  # one worker: reused
        for _ in range(int(os.environ.get("UNGUARDED_CALLS", "1")) - 1):
            try:
                await pool.run_sync(double, 21)
            except aiointerp.AiointerpError as exc:
                print("caught", type(exc).__name__, flush=True)
        print(await pool.run_sync(double, 21))  # raises, uncaught


if os.environ["UNGUARDED_BACKEND"] == "trio":
    import trio

    trio.run(main)
else:
    asyncio.run(main())
