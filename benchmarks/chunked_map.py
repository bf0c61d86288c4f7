"""Chunked map: a function of about 5 µs over many items, one per call or in batches.

Run it with ``python -m benchmarks.chunked_map`` from the repository root
(``--quick`` for a short run). Stdlib, anyio and aiointerp only; every figure comes
from the same run, so compare the ratios.

For a function this short the round trip of a call (tens of µs: two cross-thread
wake-ups) dominates, whatever runs it. ``InterpreterPool.map(..., chunksize=N)``
sends N items per round trip and runs the function over them in the worker; results
still come one by one. Contenders, each with ``workers`` interpreters (the CPU count):

* aiointerp ``pool.map`` with ``chunksize=1`` (the default) and with several sizes,
  on asyncio and on trio;
* aiointerp ``InterpreterExecutor.map`` (sync) with the same sizes;
* ``anyio.to_interpreter.run_sync``, one call per item, ``workers`` calls at a time;
* ``concurrent.futures.InterpreterPoolExecutor.map`` (Python 3.14+), which accepts
  ``chunksize`` and ignores it (one call per item);
* the function in a plain loop on one core of the main interpreter, for scale.

The per-item contenders run fewer items (:data:`ITEMS_PER_CALL`) than the batched
ones (:data:`ITEMS`): their throughput is flat in the number of items, and the full
count would take minutes. Every pool is started and warmed (its interpreters created,
the module imported) before the clock starts; each figure is the best of
:data:`REPEATS` runs.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

#: items for the batched contenders, and for the per-item ones (see the docstring)
ITEMS = 100_000
ITEMS_PER_CALL = 20_000
ITEMS_QUICK = 20_000
ITEMS_PER_CALL_QUICK = 4_000
#: the batch sizes measured besides 1
CHUNKSIZES = (16, 64, 256, 1024)
#: how long the function takes in the main interpreter
WORK_SECONDS = 5e-6
REPEATS = 2
BACKENDS = ("asyncio", "trio")


# -- the function (runs in every contender's workers: stdlib only) -------------


def work(x: int, rounds: int) -> int:
    """A few µs of pure-Python arithmetic, ``rounds`` steps long."""
    total = x
    for step in range(rounds):
        total = (total * 31 + step) % 1_000_003
    return total


def _per_call(rounds: int) -> float:
    """Seconds per :func:`work` call: the fastest of several short runs (the
    others were preempted: the machine may be busy)."""
    best = float("inf")
    for _ in range(9):
        began = time.perf_counter()
        for x in range(200):
            work(x, rounds)
        best = min(best, (time.perf_counter() - began) / 200)
    return best


def calibrate(seconds: float) -> int:
    """The ``rounds`` for which :func:`work` takes about *seconds* here."""
    rounds = 8
    while _per_call(rounds) < seconds / 2:
        rounds *= 2
    for _ in range(3):  # the cost is linear in rounds, plus the call
        rounds = max(1, round(rounds * seconds / _per_call(rounds)))
    return rounds


# -- contenders ---------------------------------------------------------------------


async def _aiointerp_map(
    func: Callable[[int], int], items: int, workers: int, chunksize: int
) -> tuple[float, int]:
    import aiointerp

    async with aiointerp.InterpreterPool(workers, min_idle=workers) as pool:
        async for _ in pool.map(func, range(4 * workers)):  # warm: module imported
            pass
        checksum = 0
        began = time.perf_counter()
        async for result in pool.map(func, range(items), chunksize=chunksize):
            checksum += result
        return time.perf_counter() - began, checksum


async def _to_interpreter(
    func: Callable[[int], int], items: int, workers: int
) -> tuple[float, int]:
    import anyio
    import anyio.to_interpreter

    limiter = anyio.CapacityLimiter(workers)
    # warm: anyio creates its interpreters on demand and keeps them for the run
    async with anyio.create_task_group() as tg:
        for x in range(workers):
            tg.start_soon(
                functools.partial(
                    anyio.to_interpreter.run_sync, func, x, limiter=limiter
                )
            )
    results = [0] * items
    source = iter(range(items))

    async def consumer() -> None:
        for x in source:  # shared: each consumer takes the next item
            results[x] = await anyio.to_interpreter.run_sync(func, x, limiter=limiter)

    began = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(consumer)
    return time.perf_counter() - began, sum(results)


def _executor_map(
    func: Callable[[int], int], items: int, workers: int, chunksize: int
) -> tuple[float, int]:
    import aiointerp

    with aiointerp.InterpreterExecutor(workers, min_idle=workers) as executor:
        list(executor.map(func, range(4 * workers)))  # warm
        began = time.perf_counter()
        checksum = sum(executor.map(func, range(items), chunksize=chunksize))
        return time.perf_counter() - began, checksum


def _interpreter_pool_executor(
    func: Callable[[int], int], items: int, workers: int
) -> tuple[float, int]:
    from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]

    with InterpreterPoolExecutor(max_workers=workers) as executor:
        list(executor.map(func, range(4 * workers)))  # warm: threads, interpreters
        began = time.perf_counter()
        checksum = sum(executor.map(func, range(items), chunksize=1024))
        return time.perf_counter() - began, checksum


def _in_process(func: Callable[[int], int], items: int) -> tuple[float, int]:
    began = time.perf_counter()
    checksum = sum(func(x) for x in range(items))
    return time.perf_counter() - began, checksum


# -- measurement --------------------------------------------------------------------


def _best(
    measure: Callable[[], tuple[float, int]], items: int, expected: int, repeats: int
) -> float:
    """Items per second, the best of *repeats* runs; checks every result sum."""
    best = 0.0
    for _ in range(repeats):
        seconds, checksum = measure()
        if checksum != expected:
            raise RuntimeError(f"wrong results: {checksum} != {expected}")
        best = max(best, items / seconds)
    return best


def run(quick: bool = False, workers: int | None = None) -> dict[str, Any]:
    """Measure; return items per second per contender (see the module docstring)."""
    import anyio

    # the function must be importable by name in every worker: not from __main__
    from benchmarks.chunked_map import work as importable_work

    workers = workers or os.cpu_count() or 1
    items = ITEMS_QUICK if quick else ITEMS
    per_call = ITEMS_PER_CALL_QUICK if quick else ITEMS_PER_CALL
    repeats = 1 if quick else REPEATS
    rounds = calibrate(WORK_SECONDS)
    func = functools.partial(importable_work, rounds=rounds)
    expected = {n: sum(func(x) for x in range(n)) for n in {items, per_call}}
    rows: list[dict[str, Any]] = []

    def add(name: str, loop: str, chunksize: int | None, n: int, rate: float) -> None:
        rows.append(
            {
                "name": name,
                "loop": loop,
                "chunksize": chunksize,
                "items": n,
                "rate": rate,
            }
        )

    rate = _best(lambda: _in_process(func, per_call), per_call, expected[per_call], 3)
    add("plain loop, main interpreter, 1 core", "-", None, per_call, rate)
    for backend in BACKENDS:
        for chunksize in (1, *CHUNKSIZES):
            n = per_call if chunksize == 1 else items
            rate = _best(
                lambda n=n, chunksize=chunksize, backend=backend: anyio.run(
                    _aiointerp_map, func, n, workers, chunksize, backend=backend
                ),
                n,
                expected[n],
                repeats,
            )
            add("aiointerp pool.map", backend, chunksize, n, rate)
        rate = _best(
            lambda backend=backend: anyio.run(
                _to_interpreter, func, per_call, workers, backend=backend
            ),
            per_call,
            expected[per_call],
            repeats,
        )
        add("anyio.to_interpreter.run_sync", backend, None, per_call, rate)
    for chunksize in (1, *CHUNKSIZES):
        n = per_call if chunksize == 1 else items
        rate = _best(
            lambda n=n, chunksize=chunksize: _executor_map(func, n, workers, chunksize),
            n,
            expected[n],
            repeats,
        )
        add("aiointerp InterpreterExecutor.map", "-", chunksize, n, rate)
    if sys.version_info >= (3, 14):
        rate = _best(
            lambda: _interpreter_pool_executor(func, per_call, workers),
            per_call,
            expected[per_call],
            repeats,
        )
        add(
            "InterpreterPoolExecutor.map (chunksize ignored)", "-", 1024, per_call, rate
        )
    return {
        "python": sys.version.split()[0],
        "workers": workers,
        "work_us": WORK_SECONDS * 1e6,
        "rounds": rounds,
        "measured_us": _per_call(rounds) * 1e6,
        "rows": rows,
    }


def _baseline(results: dict[str, Any], row: dict[str, Any]) -> float:
    """aiointerp pool.map with chunksize=1 on the row's loop (asyncio for sync rows)."""
    loop = row["loop"] if row["loop"] in BACKENDS else "asyncio"
    for candidate in results["rows"]:
        if (
            candidate["name"] == "aiointerp pool.map"
            and candidate["loop"] == loop
            and candidate["chunksize"] == 1
        ):
            return float(candidate["rate"])
    raise LookupError(loop)  # pragma: no cover


def report(results: dict[str, Any]) -> str:
    lines = [
        f"chunked map, Python {results['python']}, {results['workers']} workers, "
        f"a {results['work_us']:.0f} µs function ({results['rounds']} rounds, "
        f"{results['measured_us']:.1f} µs measured in the main interpreter)",
        f"{'contender':50} {'loop':8} {'chunksize':>9} {'items':>8} "
        f"{'items/s':>10} {'vs chunksize=1':>15}",
    ]
    for row in results["rows"]:
        chunksize = "-" if row["chunksize"] is None else str(row["chunksize"])
        ratio = row["rate"] / _baseline(results, row)
        lines.append(
            f"{row['name']:50} {row['loop']:8} {chunksize:>9} {row['items']:>8} "
            f"{row['rate']:>10,.0f} {ratio:>14.2f}x"
        )
    lines.append(
        "vs chunksize=1: items/s divided by aiointerp pool.map's with chunksize=1 on "
        "the same loop (asyncio's for the sync contenders)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items, one run")
    parser.add_argument("--workers", type=int, default=None, help="default: CPUs")
    args = parser.parse_args()
    print(report(run(quick=args.quick, workers=args.workers)))


if __name__ == "__main__":
    main()
