"""aiointerp demo: CPU-bound pure-Python jobs off the event loop, in parallel.

Runs the same batch of jobs (counting primes by trial division) four ways and
times each:

* sequentially, in the main thread (the baseline);
* with ``anyio.to_thread.run_sync``: the event loop stays free, but the threads share
  one GIL, so the jobs still run one at a time;
* with ``aiointerp.run_sync_in_interpreter``: each job runs in a subinterpreter with
  its own GIL, so they run in parallel on every core;

the last two on asyncio and on trio. It also measures how late a 1 ms ticker task
wakes up meanwhile (the event loop's responsiveness), and checks that every way
returned the same results.

Run it with ``bash scripts/run.sh demo`` or ``python examples/demo.py [--jobs N]
[--size S] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from _demo_work import calibrate, count_primes

import aiointerp

Runner = Callable[..., Awaitable[Any]]


@dataclass
class Outcome:
    label: str
    backend: str | None
    wall: float
    results: list[int]
    max_lag: float | None = None

    @property
    def title(self) -> str:
        return self.label if self.backend is None else f"{self.label} on {self.backend}"


def run_sequentially(limits: list[int]) -> Outcome:
    start = time.perf_counter()
    results = [count_primes(limit) for limit in limits]
    wall = time.perf_counter() - start
    return Outcome("sequential (no event loop)", None, wall, results)


async def run_batch(run: Runner, limits: list[int]) -> tuple[float, list[int], float]:
    """Run one job per limit concurrently; return wall time, results, max loop lag."""
    results = [0] * len(limits)
    max_lag = 0.0
    done = anyio.Event()

    async def ticker() -> None:
        nonlocal max_lag
        while not done.is_set():
            start = time.perf_counter()
            await anyio.sleep(0.001)
            max_lag = max(max_lag, time.perf_counter() - start - 0.001)

    async def job(index: int) -> None:
        results[index] = await run(count_primes, limits[index])

    async with anyio.create_task_group() as outer:
        outer.start_soon(ticker)
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for index in range(len(limits)):
                tg.start_soon(job, index)
        wall = time.perf_counter() - start
        done.set()
    return wall, results, max_lag


async def with_to_thread(limits: list[int]) -> tuple[float, list[int], float]:
    return await run_batch(anyio.to_thread.run_sync, limits)


async def with_aiointerp(limits: list[int]) -> tuple[float, list[int], float]:
    # Warm the event loop's default pool first (one interpreter per CPU, created on
    # their own threads), as a long-running application would have it.
    pool = aiointerp.current_default_pool()
    async with anyio.create_task_group() as tg:
        for _ in range(pool.max_workers):
            tg.start_soon(aiointerp.run_sync_in_interpreter, count_primes, 10)
    return await run_batch(aiointerp.run_sync_in_interpreter, limits)


def timed_on_loop(
    label: str,
    batch: Callable[[list[int]], Awaitable[tuple[float, list[int], float]]],
    limits: list[int],
    backend: str,
) -> Outcome:
    wall, results, max_lag = anyio.run(batch, limits, backend=backend)
    return Outcome(label, backend, wall, results, max_lag)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def print_table(outcomes: list[Outcome]) -> None:
    sequential = outcomes[0].wall
    threads = {o.backend: o.wall for o in outcomes if o.label.startswith("anyio")}
    headers = ["way", "wall time", "vs sequential", "vs to_thread", "max loop lag"]
    rows = [
        [
            o.title,
            _ms(o.wall),
            f"{sequential / o.wall:.2f}x",
            f"{threads[o.backend] / o.wall:.2f}x" if o.backend in threads else "-",
            "-" if o.max_lag is None else _ms(o.max_lag),
        ]
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (
            cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)
        )
        return "  ".join([first, *rest])

    print(line(headers))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print(line(row))
    print(
        "(vs to_thread: against anyio.to_thread on the same event loop; max loop lag: "
        "how late a task sleeping 1 ms woke up during the batch)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs per batch (8)")
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="count the primes below SIZE in each job (default: what takes about "
        "0.25 s here, 0.05 s with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small jobs: finishes in a few seconds"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    size = args.size or calibrate(0.05 if args.quick else 0.25)
    # slightly different limits, so that a mixed-up result would show
    limits = [size + index for index in range(args.jobs)]
    cpus = os.cpu_count() or 1

    print(
        f"aiointerp demo on Python {platform.python_version()} "
        f"({platform.python_implementation()}), {cpus} CPUs"
    )
    print(
        f"{args.jobs} jobs: count the primes below {size:,} (+0..{args.jobs - 1}), "
        "pure Python, CPU-bound"
    )
    print(
        f"aiointerp runs them on {cpus} interpreters (one per CPU), so at most "
        f"{min(cpus, args.jobs)}x faster than sequential here\n",
        flush=True,
    )

    outcomes = [run_sequentially(limits)]
    print(f"  {outcomes[0].title}: {_ms(outcomes[0].wall)}", flush=True)
    for label, batch in (
        ("anyio.to_thread", with_to_thread),
        ("aiointerp", with_aiointerp),
    ):
        for backend in ("asyncio", "trio"):
            outcomes.append(timed_on_loop(label, batch, limits, backend))
            print(f"  {outcomes[-1].title}: {_ms(outcomes[-1].wall)}", flush=True)
    print()
    print_table(outcomes)
    print()

    expected = outcomes[0].results
    wrong = [o.title for o in outcomes if o.results != expected]
    if wrong:
        print(f"RESULTS DIFFER from the sequential run: {', '.join(wrong)}")
        return 1
    print(
        f"results verified: all {len(outcomes)} ways returned the same "
        f"{len(expected)} prime counts ({expected[0]:,} below {limits[0]:,}, ...)"
    )
    print(
        "Threads share the GIL with each other and with the event loop; each "
        "interpreter has its own."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
