"""Event-loop lag while big values cross: how long the loop stalls during one call.

Run it with ``python -m benchmarks.loop_lag`` from the repository root (``--quick``
for a short run). Stdlib and anyio only.

A ticker task sleeps 1 ms in a loop; its lag is how much later than asked it wakes
up. One pool of one worker runs, one at a time, calls whose values are big:

* ``bytearray arg``: a 100 MB ``bytearray`` argument (the function returns its length);
* ``list result``: a call that returns a list of 3 million ints;
* ``list arg``: the same list as an argument; ``bytes result``: 100 MB of ``bytes``
  coming back (informative rows: not part of the 5 ms goal);
* ``idle``: the same sampling over 0.25 s without a call, and ``busy worker``: during
  a 0.25 s call that keeps the worker's CPU busy with small values: the noise floors
  (on a 2-core machine, a busy worker thread takes one core; other processes the
  other, and the loop thread waits for a core, not for the GIL).

For each case, the lag samples of the ticker sleeps that overlapped a call
(over ROUNDS calls) give the max and the p99; ``call`` is the median duration of the
call. The big result is dropped after the sampling window: freeing it is the
caller's cost, not the transport's. A fresh 3-million-item list costs the loop one
traversal by the GC's next young collection (20-40 ms, whoever built it); for a result
it may fall in the window, as it did not when the result was unpickled in one C call
(the collection then came after it); arguments are made old before their call.

Then the trivial round trip (one small int in, out), median per call: the common
case, which the big-value paths must not slow down. On asyncio and trio.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import _work
from benchmarks._stats import fmt_time, percentile

ROUNDS = 5
ROUNDS_QUICK = 2
TICK = 0.001
BIG_BYTES = 100 * 1024 * 1024
BIG_LIST = 3_000_000
TRIVIAL_CALLS = 1000
TRIVIAL_ROUNDS = 15
TRIVIAL_ROUNDS_QUICK = 4
BACKENDS = ("asyncio", "trio")
#: the cases that the 5 ms goal is about, then the informative ones
CASES = (
    "idle",
    "busy worker",
    "bytearray arg",
    "list result",
    "list arg",
    "bytes result",
)
MAIN_CASES = CASES[2:4]
#: seconds of the "idle" case: no call, the machine's own noise
IDLE_WINDOW = 0.25


# -- code that runs in the worker (stdlib only) ------------------------------------------


def make_ints(n: int) -> list[int]:
    """A list of *n* small ints: a big result that is not a buffer."""
    return list(range(n))


def make_bytes(n: int) -> bytes:
    return bytes(n)


def spin(seconds: float) -> int:
    """Keep the worker's CPU busy, with small values in and out."""
    end = time.perf_counter() + seconds
    turns = 0
    while time.perf_counter() < end:
        turns += 1
    return turns


# -- measurement -----------------------------------------------------------------------


class _Ticker:
    """Sleeps TICK in a loop; records (start of the sleep, oversleep)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.running = True

    async def run(self, task_status: Any) -> None:
        import anyio

        task_status.started()
        while self.running:
            start = time.perf_counter()
            await anyio.sleep(TICK)
            self.samples.append((start, time.perf_counter() - start - TICK))

    def between(self, begin: float, end: float) -> list[float]:
        """The lags of the sleeps that overlapped [begin, end]."""
        return [
            max(0.0, lag)
            for start, lag in self.samples
            if start <= end and start + TICK + lag >= begin
        ]


async def _lag_case(
    pool: Any, ticker: _Ticker, case: str, rounds: int
) -> dict[str, float]:
    import anyio

    calls: list[float] = []
    lags: list[float] = []
    for _ in range(rounds):
        args: tuple[Any, ...] = ()
        func: Callable[..., Any] = _work.noop
        if case == "bytearray arg":
            func, args = _work.size_of, (bytearray(BIG_BYTES),)
        elif case == "list result":
            func, args = make_ints, (BIG_LIST,)
        elif case == "list arg":
            func, args = _work.size_of, (make_ints(BIG_LIST),)
        elif case == "bytes result":
            func, args = make_bytes, (BIG_BYTES,)
        elif case == "busy worker":
            func, args = spin, (IDLE_WINDOW,)
        # an argument built just now is in the GC's young generation: the next young
        # collection, in whichever thread allocates, traverses its 3 million items
        # (20-40 ms). Data that a program sends exists already; collected here, it
        # is old, as such data would be
        gc.collect()
        await anyio.sleep(0.02)  # the ticker is sleeping normally again
        begin = time.perf_counter()
        if case == "idle":  # the noise floor: the same window, no call
            result = await anyio.sleep(IDLE_WINDOW)
        else:
            result = await pool.run_sync(func, *args)
        end = time.perf_counter()
        await anyio.sleep(0.005)  # the sleep that spans the end of the call ends
        lags.extend(ticker.between(begin, end))
        calls.append(end - begin)
        del result, args  # freed outside every sampling window
    return {
        "max": max(lags),
        "p99": percentile(lags, 0.99),
        "ticks": len(lags),
        "call": statistics.median(calls),
    }


async def _trivial(pool: Any, rounds: int) -> float:
    per_call = []
    for _ in range(rounds):
        began = time.perf_counter()
        for i in range(TRIVIAL_CALLS):
            await pool.run_sync(_work.noop, i)
        per_call.append((time.perf_counter() - began) / TRIVIAL_CALLS)
    return statistics.median(per_call)


async def _measure(quick: bool, cases: tuple[str, ...]) -> dict[str, Any]:
    import anyio

    import aiointerp

    rounds = ROUNDS_QUICK if quick else ROUNDS
    figures: dict[str, Any] = {}
    ticker = _Ticker()
    async with anyio.create_task_group() as tg, aiointerp.InterpreterPool(1) as pool:
        await pool.run_sync(_work.noop, 1)  # warm: worker started, modules imported
        await pool.run_sync(make_ints, 10)
        await tg.start(ticker.run)
        for case in cases:
            figures[case] = await _lag_case(pool, ticker, case, rounds)
        ticker.running = False
        figures["trivial"] = await _trivial(
            pool, TRIVIAL_ROUNDS_QUICK if quick else TRIVIAL_ROUNDS
        )
    return figures


def run(quick: bool = False, cases: tuple[str, ...] = CASES) -> dict[str, Any]:
    import anyio

    results: dict[str, Any] = {"python": sys.version.split()[0]}
    for backend in BACKENDS:
        results[backend] = anyio.run(_measure, quick, cases, backend=backend)
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        f"event-loop lag during one call with a big value, Python {results['python']}"
        f" (ticker sleeps {TICK * 1e3:g} ms; goal: max lag < 5 ms for "
        + " and ".join(MAIN_CASES)
        + ")",
        f"{'':10}{'case':16}{'max lag':>12}{'p99 lag':>12}{'ticks':>8}{'call':>12}",
    ]
    trivial: list[str] = []
    for backend in BACKENDS:
        fig = results[backend]
        for case in CASES:
            if case not in fig:
                continue
            row = fig[case]
            lines.append(
                f"{backend:10}{case:16}{fmt_time(row['max']):>12}"
                f"{fmt_time(row['p99']):>12}{row['ticks']:>8}{fmt_time(row['call']):>12}"
            )
        trivial.append(f"{backend} {fig['trivial'] * 1e6:.1f} µs")
    lines.append("trivial round trip (median per call): " + ", ".join(trivial))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help="comma-separated subset of: %(default)s",
    )
    args = parser.parse_args()
    cases = tuple(c.strip() for c in args.cases.split(",") if c.strip())
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    print(report(run(quick=args.quick, cases=cases)))


if __name__ == "__main__":
    main()
