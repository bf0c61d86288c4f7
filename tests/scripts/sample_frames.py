"""A sampling profiler's habit beside interpreter calls: sys._current_frames() every ms.

``python sample_frames.py``: a thread samples every thread's frame, as Sentry,
Datadog, pyinstrument and Dask's profiler do, while a pool runs CPU-bound calls on
asyncio and on trio. Prints the results and how many samples were taken. CPython
3.13.0 aborts the process here (see docs/limitations.md); later releases survive.
"""

from __future__ import annotations

import sys
import threading

import _funcs_cancel as funcs
import anyio

from aiointerp import InterpreterPool

ROUNDS = 10
CALLS = 4
N = 100_000


async def calls() -> list[int]:
    results: list[int] = []

    async def one(seed: int) -> None:
        results.append(await pool.run_sync(funcs.checksum, N, seed))

    async with InterpreterPool(2) as pool:
        for _ in range(ROUNDS):
            async with anyio.create_task_group() as tg:
                for seed in range(CALLS):
                    tg.start_soon(one, seed)
    return sorted(results)


def main() -> None:
    stop = threading.Event()
    samples = 0

    def sample() -> None:
        nonlocal samples
        while not stop.wait(0.001):
            sys._current_frames()
            samples += 1

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for backend in ("asyncio", "trio"):
            results = anyio.run(calls, backend=backend)
            expected = sorted(funcs.checksum(N, seed) for seed in range(CALLS)) * ROUNDS
            print(backend, results == sorted(expected))
    finally:
        stop.set()
        sampler.join()
    print("samples", samples > 100)


if __name__ == "__main__":
    main()
