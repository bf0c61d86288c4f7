"""InterpreterExecutor: the concurrent.futures interface, for synchronous code."""

from __future__ import annotations

from concurrent.futures import CancelledError

import aiointerp


def count_primes(limit: int) -> int:
    """Pure-Python CPU work: how many primes are below ``limit``."""
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


def main() -> None:
    limits = [20_000, 30_000, 40_000, 50_000]
    with aiointerp.InterpreterExecutor(max_workers=2) as executor:
        for limit, count in zip(
            limits, executor.map(count_primes, limits), strict=True
        ):
            print(f"primes below {limit}: {count}")

        future = executor.submit(count_primes, 10**9)
        try:
            future.result(timeout=0.5)
        except TimeoutError:
            # future.cancel() cannot stop a running call (as documented for every
            # executor); interrupt() can: the code stops inside its interpreter
            print("still running; cancel() ->", future.cancel())
            executor.interrupt(future)
        try:
            future.result()
        except CancelledError:
            print("the long call was interrupted")


if __name__ == "__main__":
    main()
