"""The demo's CPU-bound job, in its own module so worker interpreters import only it.

Functions sent to an interpreter must be importable there by name; a function of
the demo script itself works too (aiointerp re-runs the script as ``__mp_main__``
in each worker, like multiprocessing), but that would import anyio and trio in
every worker for nothing.
"""

from __future__ import annotations

import time


def count_primes(limit: int) -> int:
    """Count the primes below *limit* by trial division: pure-Python, GIL-bound work."""
    count = 0
    for candidate in range(2, limit):
        divisor = 2
        while divisor * divisor <= candidate:
            if candidate % divisor == 0:
                break
            divisor += 1
        else:
            count += 1
    return count


def calibrate(seconds: float) -> int:
    """Return a *limit* for which :func:`count_primes` takes about *seconds* here."""
    limit = 5_000
    while True:
        start = time.perf_counter()
        count_primes(limit)
        elapsed = time.perf_counter() - start
        if elapsed >= min(0.02, seconds / 2):
            break
        limit *= 2
    # the cost grows a little faster than linearly with the limit
    return max(1_000, int(limit * (seconds / elapsed) ** (1 / 1.4)))
