"""Parallel CPU-bound work from trio; cancelling the scope interrupts the code."""

from __future__ import annotations

import trio

import aiointerp


def count_primes(limit: int) -> int:
    """Pure-Python CPU work: how many primes are below ``limit``."""
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


async def main() -> None:
    counts: dict[int, int] = {}

    async def count(limit: int) -> None:
        counts[limit] = await aiointerp.run_sync_in_interpreter(count_primes, limit)

    async with trio.open_nursery() as nursery:
        for limit in (20_000, 30_000, 40_000, 50_000):
            nursery.start_soon(count, limit)
    for limit, found in sorted(counts.items()):
        print(f"primes below {limit}: {found}")
    with trio.move_on_after(0.5) as scope:  # cancellation reaches the interpreter
        await aiointerp.run_sync_in_interpreter(count_primes, 10**9)
    if scope.cancelled_caught:
        print("the long call was interrupted after 0.5 s")


if __name__ == "__main__":
    trio.run(main)
