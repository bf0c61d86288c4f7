"""Parallel CPU-bound work from asyncio, and a timeout that really stops the code."""

from __future__ import annotations

import asyncio

import aiointerp


def count_primes(limit: int) -> int:
    """Pure-Python CPU work: how many primes are below ``limit``."""
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


async def main() -> None:
    limits = [20_000, 30_000, 40_000, 50_000]
    counts = await asyncio.gather(
        *(aiointerp.run_sync_in_interpreter(count_primes, n) for n in limits)
    )
    for limit, count in zip(limits, counts, strict=True):
        print(f"primes below {limit}: {count}")
    try:  # the worker is interrupted, not left running in the background
        await aiointerp.run_sync_in_interpreter(count_primes, 10**9, timeout=0.5)
    except TimeoutError:
        print("the long call was interrupted after 0.5 s")


if __name__ == "__main__":
    asyncio.run(main())
