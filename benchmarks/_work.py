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


# -- the process workers' suite (benchmarks._process_scenarios) ---------------------
# numpy and the shapes are imported inside the functions: importing this module
# stays stdlib only


def warm_numpy(seconds: float) -> int:
    """Import numpy and hold the worker a moment (so concurrent calls reach each one)."""
    import numpy

    time.sleep(seconds)
    return int(numpy.zeros(1).size)


#: elements of the array that :func:`numpy_job` sorts (256 KB: it stays in cache)
NUMPY_SORT_SIZE = 32_768


def numpy_job(rounds: int) -> float:
    """CPU-bound numpy work on one core: sort a shuffled array *rounds* times.

    Sorting and element-wise ufuncs never use BLAS threads, so one call keeps one
    core busy, whatever the BLAS library's thread settings.
    """
    import numpy

    shuffled = numpy.random.default_rng(0).permutation(NUMPY_SORT_SIZE).astype(float)
    total = 0.0
    for _ in range(rounds):
        ordered = numpy.sort(shuffled)
        total += float(ordered[-1] - ordered[0])
    return total


def calibrate_numpy(target_s: float) -> int:
    """The :func:`numpy_job` argument that takes about *target_s* here."""
    numpy_job(1)  # numpy's import is not part of the job
    rounds = 10
    while True:
        start = time.perf_counter()
        numpy_job(rounds)
        elapsed = time.perf_counter() - start
        if elapsed >= 0.02:
            break
        rounds *= 2
    return max(1, round(rounds * target_s / elapsed))


def nbytes(array: Any) -> int:
    """The "in" direction of an array argument: receive it, return its size."""
    return int(array.nbytes)


def run_shape_fifo(
    shape: str, start_path: str, cleanup_path: str, stop_path: str
) -> None:
    """Run a code shape of :mod:`benchmarks._shapes`, with named pipes for signals.

    A process worker does not share the host's fds: the shape's handshake and its
    final "cleanup done" byte go through FIFOs opened by path. When the process is
    killed instead, the stop FIFO reaches end of file with no byte.
    """
    import os

    from benchmarks import _shapes

    stop_fd = os.open(stop_path, os.O_WRONLY)
    try:
        start_fd = os.open(start_path, os.O_WRONLY)
        try:
            _shapes.run_shape(shape, start_fd, cleanup_path, stop_fd)
        finally:
            os.close(start_fd)
    finally:
        os.close(stop_fd)


def spin_fifo(seconds: float, start_path: str, stop_path: str) -> None:
    """A pure-Python loop of *seconds* that signals its start and its end by FIFOs.

    For pools that cannot stop a running call (their code runs to its end).
    """
    import os

    stop_fd = os.open(stop_path, os.O_WRONLY)
    try:
        start_fd = os.open(start_path, os.O_WRONLY)
        try:
            os.write(start_fd, b"s" * 8)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
        finally:
            os.close(start_fd)
    finally:
        os.write(stop_fd, b"e")
        os.close(stop_fd)
