"""The functions the benchmarks send to workers: stdlib only, importable everywhere.

Workers of every contender (subinterpreters, threads, processes) import this module
by name, so it must stay free of anyio, trio and aiointerp imports.
"""

from __future__ import annotations

import time
from typing import Any


def noop(x: int) -> int:
    """The trivial call: one small shareable argument, one small shareable result."""
    return x


def count_primes(n: int) -> int:
    """Count the primes below *n* by trial division: pure-Python CPU work."""
    count = 0
    for candidate in range(2, n):
        divisor = 2
        while divisor * divisor <= candidate:
            if candidate % divisor == 0:
                break
            divisor += 1
        else:
            count += 1
    return count


def size_of(payload: Any) -> int:
    """The "in" direction of a payload: receive it, return something tiny."""
    if isinstance(payload, dict):
        return sum(len(chunk) for chunk in payload["chunks"])
    return len(payload)


def echo(payload: Any) -> Any:
    """The "in and out" direction of a payload: return it as it came."""
    return payload


def sleep(seconds: float) -> None:
    """Occupy a worker without using CPU (used to make pools start N workers)."""
    time.sleep(seconds)


def calibrate(target_s: float) -> int:
    """Return the ``count_primes`` argument that takes about *target_s* here."""
    n = 2_000
    while True:
        start = time.perf_counter()
        count_primes(n)
        elapsed = time.perf_counter() - start
        if elapsed >= 0.02 or n > 50_000_000:
            break
        n *= 2
    # the work grows a little faster than linearly (n * sqrt(n) / log n)
    for _ in range(3):
        n = max(100, int(n * (target_s / elapsed) ** (1 / 1.4)))
        start = time.perf_counter()
        count_primes(n)
        elapsed = time.perf_counter() - start
        if abs(elapsed - target_s) < 0.1 * target_s:
            break
    return n
