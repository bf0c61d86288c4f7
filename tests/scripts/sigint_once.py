"""One SIGINT at a random moment of a trio app that opens a pool and calls it.

``python sigint_once.py TRIES SEED``: TRIES times in this one process (a fresh
process per try would cost its start-up each time), ``trio.run`` an app that opens
``InterpreterPool(4, min_idle=4)`` in ``async with`` and calls it in a
loop (calls that return at once and calls of 1-5 ms) from the main task; a timer thread sends one
SIGINT to this process 0-150 ms after the try began, so that it lands while the
watcher starts the workers, during calls, or while the pool closes. ``trio.run``
must raise KeyboardInterrupt, never ``TrioInternalError``. One JSON line per try
on stdout (the outcome, the delay, the traceback of anything else, the aiointerp
threads still alive afterwards), then ``{"end": "ok"}``; tests/face/test_sigint_storm.py
asserts on them.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
from typing import Any

import _funcs_storm as funcs
import trio

import aiointerp
from aiointerp._wire import _interp

#: SIGINT this long after the try began, at the latest
LATEST = 0.150
#: hang guard: a try whose SIGINT was lost returns after this
TRY_HANG = 10.0
#: hang guard of a whole try: then every thread's stack is dumped and the process exits
DUMP_AFTER = 20.0
#: hang guard for the threads of a try to end once ``trio.run`` returned
THREADS_HANG = 5.0


async def app(seed: float) -> None:
    rng = random.Random(seed)
    with trio.move_on_after(TRY_HANG):
        async with aiointerp.InterpreterPool(4, min_idle=4) as pool:
            for index in range(sys.maxsize):
                await call(pool, f"call-{index}", rng)


async def call(pool: aiointerp.InterpreterPool, token: str, rng: random.Random) -> None:
    if rng.random() < 0.5:
        result = await pool.run_sync(funcs.token, token)
    else:
        result = await pool.run_sync(funcs.spin_token, token, rng.uniform(0.001, 0.005))
    assert result == token, (token, result)


async def warm_up() -> None:
    """Import everything a try needs: a SIGINT in the middle of an import (of asyncio,
    which aiointerp imports lazily) leaves a half-initialised module behind."""
    async with aiointerp.InterpreterPool(1) as pool:
        await pool.run_sync(funcs.token, "warm")
        await pool.run_sync(funcs.spin_token, "warm", 0.001)


def aiointerp_threads() -> list[str]:
    """The pool's threads still alive, once they had a chance to end."""
    deadline = time.monotonic() + THREADS_HANG
    while True:
        names = [
            t.name for t in threading.enumerate() if t.name.startswith("aiointerp")
        ]
        if not names or time.monotonic() > deadline:
            return names
        time.sleep(0.01)  # polling a hang guard, not synchronisation


def one_try(index: int, rng: random.Random, baseline: set[int]) -> dict[str, Any]:
    delay = rng.uniform(0, LATEST)
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    result: dict[str, Any] = {"try": index, "delay": round(delay, 4)}
    started = time.monotonic()
    faulthandler.dump_traceback_later(DUMP_AFTER, exit=True)
    timer.start()
    try:
        trio.run(app, rng.random())
    except KeyboardInterrupt:
        result["outcome"] = "KeyboardInterrupt"
    except BaseException as exc:  # TrioInternalError and the like
        timer.cancel()  # ended before the SIGINT: do not let it hit this program
        result["outcome"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
        result["traceback"] = "".join(traceback.format_exception(exc))
    else:
        timer.cancel()
        result["outcome"] = "returned"  # the SIGINT was lost
    finally:
        timer.join()
        faulthandler.cancel_dump_traceback_later()
    result["took"] = round(time.monotonic() - started, 4)
    result["threads_left"] = aiointerp_threads()
    result["interpreters_left"] = len(_interp.live_ids() - baseline)
    return result


def main() -> None:
    # a child of a shell's background job starts with SIGINT ignored; trio only
    # delivers KeyboardInterrupt when Python's default handler is installed
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tries, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    trio.run(warm_up)
    baseline = _interp.live_ids()
    for index in range(tries):
        try:
            result = one_try(index, rng, baseline)
        except KeyboardInterrupt:  # trio.run ended otherwise, then the SIGINT came
            result = {"try": index, "outcome": "KeyboardInterrupt after trio.run"}
        print(json.dumps(result), flush=True)
    print(json.dumps({"end": "ok"}), flush=True)


if __name__ == "__main__":
    main()
