"""InterpreterPool.map with a progress bar: results as they complete, bounded work."""

from __future__ import annotations

import sys

import anyio

import aiointerp


def count_primes(limit: int) -> int:
    """Pure-Python CPU work: how many primes are below ``limit``."""
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


def show(done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    bar = "#" * filled + "-" * (width - filled)
    end = "\n" if done == total else ""
    # a carriage return redraws the line in a terminal; a log shows every step
    sys.stdout.write(f"\r[{bar}] {done}/{total}{end}")
    sys.stdout.flush()


async def main() -> None:
    limits = [5_000 + 1_000 * i for i in range(24)]
    total = 0
    async with aiointerp.InterpreterPool() as pool:
        # at most 4 calls ahead of this loop; results as they complete
        results = pool.map(count_primes, limits, ordered=False, max_in_flight=4)
        done = 0
        async for count in results:
            total += count
            done += 1
            show(done, len(limits))
    print(f"{total} primes counted in {len(limits)} ranges")


if __name__ == "__main__":
    anyio.run(main)
