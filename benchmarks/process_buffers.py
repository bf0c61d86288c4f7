"""Big buffers to and from process workers: round trips and event-loop lag.

Run it with ``python -m benchmarks.process_buffers`` from the repository root
(``--quick`` for a short run). Needs numpy (requirements-dev.txt).

* **Round trip**: a 100 MB value sent to a worker process that returns it as it
  came (:func:`benchmarks._work.echo`), median over the rounds, for a numpy array
  and for ``bytes``; ``InterpreterPool(kind="process")`` against a
  :class:`concurrent.futures.ProcessPoolExecutor` used through
  ``loop.run_in_executor`` (asyncio), both with one warm worker.
* **Loop lag**: a ticker task sleeps 1 ms in a loop while a 100 MB argument goes to
  the worker (which returns its length): the worst oversleep of the sleeps that
  overlapped the call, and the p99, for the same contenders; ``idle``: the same
  sampling without a call, the machine's noise floor.
* **Trivial**: one small int in and out, median per call: the common case, which
  the big-buffer path must not slow down.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks import _work
from benchmarks._stats import fmt_ratio, fmt_time, percentile

SIZE = 100 * 1024 * 1024
ROUNDS = 7
ROUNDS_QUICK = 3
TICK = 0.001
TRIVIAL_CALLS = 500
#: seconds of the idle sampling (no call): the machine's own noise
IDLE_WINDOW = 0.1
VALUES = ("numpy", "bytes")


def _value(kind: str) -> Any:
    if kind == "numpy":
        import numpy

        return numpy.arange(SIZE // 8, dtype=numpy.float64)
    return bytes(range(256)) * (SIZE // 256)


class _Ticker:
    """Sleeps TICK in a loop; records (start of the sleep, oversleep)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.running = True

    async def run(self) -> None:
        while self.running:
            start = time.perf_counter()
            await asyncio.sleep(TICK)
            self.samples.append((start, time.perf_counter() - start - TICK))

    def between(self, begin: float, end: float) -> list[float]:
        return [
            max(0.0, lag)
            for start, lag in self.samples
            if start <= end and start + TICK + lag >= begin
        ]


type Call = Callable[..., Awaitable[Any]]


async def _contender(name: str, stack: Any) -> Call:
    """An ``await call(func, *args)`` for *name*, its worker started and warm."""
    if name == "aiointerp":
        import aiointerp

        pool = await stack.enter_async_context(
            aiointerp.InterpreterPool(1, kind="process")
        )
        call: Call = pool.run_sync
    else:
        executor = stack.enter_context(concurrent.futures.ProcessPoolExecutor(1))
        loop = asyncio.get_running_loop()

        async def call(func: Callable[..., Any], *args: Any) -> Any:
            return await loop.run_in_executor(executor, func, *args)

    await call(_work.noop, 1)
    await call(_work.echo, _value("numpy")[:10])  # numpy imported in the worker
    return call


async def _measure(name: str, rounds: int) -> dict[str, Any]:
    import contextlib

    figures: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        call = await _contender(name, stack)
        ticker = _Ticker()
        tick_task = asyncio.create_task(ticker.run())
        for kind in VALUES:
            value = _value(kind)
            gc.collect()
            trips: list[float] = []
            lags: list[float] = []
            for _ in range(rounds):
                begin = time.perf_counter()
                result = await call(_work.echo, value)
                trips.append(time.perf_counter() - begin)
                assert len(result) == len(value)
                del result
                await asyncio.sleep(0.02)
                begin = time.perf_counter()
                assert await call(_work.size_of, value) == len(value)
                end = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.extend(ticker.between(begin, end))
            figures[kind] = {
                "trip": statistics.median(trips),
                "lag max": max(lags),
                "lag p99": percentile(lags, 0.99),
            }
        lags = []
        for _ in range(rounds):  # the noise floor: the same sampling, no call
            await asyncio.sleep(0.02)
            begin = time.perf_counter()
            await asyncio.sleep(IDLE_WINDOW)
            end = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.extend(ticker.between(begin, end))
        figures["idle"] = {"lag max": max(lags), "lag p99": percentile(lags, 0.99)}
        ticker.running = False
        await tick_task
        per_call = []
        for _ in range(rounds):
            began = time.perf_counter()
            for i in range(TRIVIAL_CALLS):
                await call(_work.noop, i)
            per_call.append((time.perf_counter() - began) / TRIVIAL_CALLS)
        figures["trivial"] = statistics.median(per_call)
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    rounds = ROUNDS_QUICK if quick else ROUNDS
    results: dict[str, Any] = {"python": sys.version.split()[0]}
    for name in ("aiointerp", "ProcessPoolExecutor"):
        results[name] = asyncio.run(_measure(name, rounds))
    return results


def report(results: dict[str, Any]) -> str:
    ours, theirs = results["aiointerp"], results["ProcessPoolExecutor"]
    lines = [
        f"100 MB buffers to and from one worker process, Python {results['python']}",
        f"{'value':8}{'contender':22}{'round trip':>12}{'lag max':>12}{'lag p99':>12}",
    ]
    for kind in VALUES:
        for name in ("aiointerp", "ProcessPoolExecutor"):
            row = results[name][kind]
            lines.append(
                f"{kind:8}{name:22}{fmt_time(row['trip']):>12}"
                f"{fmt_time(row['lag max']):>12}{fmt_time(row['lag p99']):>12}"
            )
        ratio = theirs[kind]["trip"] / ours[kind]["trip"]
        lines.append(f"{'':8}{'speed-up':22}{fmt_ratio(ratio):>12}")
    for name in ("aiointerp", "ProcessPoolExecutor"):
        row = results[name]["idle"]
        lines.append(
            f"{'idle':8}{name:22}{'':>12}{fmt_time(row['lag max']):>12}"
            f"{fmt_time(row['lag p99']):>12}"
        )
    lines.append(
        f"trivial round trip: aiointerp {fmt_time(ours['trivial'])}, "
        f"ProcessPoolExecutor {fmt_time(theirs['trivial'])}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    print(report(run(quick=args.quick)))


if __name__ == "__main__":
    main()
