"""Dask: pure-Python work on a local cluster, three ways, and cancel latency.

Run it with ``python -m benchmarks.dask_cluster`` from the repository root (``--quick``
for a short run). Needs ``aiointerp[dask]``. One run, on this machine's cores
(``--cores``, default 2), three clusters of worker processes on 127.0.0.1:

* **dask threads**: one worker with ``cores`` threads, plain Dask tasks (one GIL)
* **dask processes**: ``cores`` workers with one thread each (the usual answer)
* **aiointerp**: one worker with ``cores`` threads, :class:`InterpreterPlugin`, tasks
  made by :func:`in_interpreter` (one process, one GIL per interpreter)

Each runs the same ``count_primes`` chunks (``benchmarks._work``) after a warm-up, in
``ROUNDS`` rounds interleaved with a sequential run in this process (medians);
the table gives wall time, tasks/s, the speed-up over the sequential time of the same
chunks measured in this process, and the total RSS of the worker processes. Then the
cancel latency: a task spins in pure Python; the time from ``client.cancel`` to the
end of its ``finally`` block (aiointerp), against Dask alone, where the code runs on
to its end (a bounded spin here). This module imports Dask only inside functions:
the spin functions run inside interpreters too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from benchmarks import _work

#: chunk length in seconds of sequential work, chunks per core
CHUNK_S, CHUNKS_PER_CORE = 0.25, 8
CHUNK_S_QUICK, CHUNKS_PER_CORE_QUICK = 0.05, 4
CANCEL_SAMPLES, CANCEL_SAMPLES_QUICK = 10, 3
ROUNDS = 3
#: how long the plain Dask spin runs when nothing stops it
DASK_SPIN_S = 2.0


# -- worker side (stdlib only) -------------------------------------------------------


def _signal(fifo: str) -> None:
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


def spin(started: str, stopped: str, seconds: float) -> None:
    """Spin in pure Python for ``seconds``; signal the start, and the end from finally."""
    try:
        _signal(started)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    finally:
        _signal(stopped)


# -- host side -----------------------------------------------------------------------


def _cluster(workers: int, threads: int) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: 8787 may be taken
        silence_logs=40,
    )


def _worker_rss(client: Any) -> int:
    import psutil

    pids = client.run(os.getpid).values()
    return sum(psutil.Process(pid).memory_info().rss for pid in pids)


class _Way:
    """One of the three clusters, open for the whole run."""

    def __init__(self, way: str, cores: int) -> None:
        from distributed import Client

        from aiointerp.dask import InterpreterPlugin, in_interpreter

        self.way = way
        workers, threads = (cores, 1) if way == "dask processes" else (1, cores)
        self.shape = f"{workers} x {threads}"
        self.cluster = _cluster(workers, threads)
        self.client = Client(self.cluster)
        self.func: Any = _work.count_primes
        if way == "aiointerp":
            self.client.register_plugin(InterpreterPlugin())
            self.func = in_interpreter(_work.count_primes)
        self.walls: list[float] = []

    def run(self, chunks: list[int], record: bool = True) -> None:
        start = time.perf_counter()
        results = self.client.gather(self.client.map(self.func, chunks, pure=False))
        if record:
            self.walls.append(time.perf_counter() - start)
        assert results == [_expected(n) for n in chunks]

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


_EXPECTED: dict[int, int] = {}


def _expected(n: int) -> int:
    if n not in _EXPECTED:
        _EXPECTED[n] = _work.count_primes(n)
    return _EXPECTED[n]


def _wait(fd: int, deadline: float) -> float:
    import select

    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if ready and os.read(fd, 8):
            return time.perf_counter()
    raise TimeoutError("the task did not signal")


def _cancel_latency(way: str, samples: int) -> list[float]:
    """Seconds from client.cancel to the end of the task's finally block."""
    from distributed import Client

    from aiointerp.dask import InterpreterPlugin, in_interpreter

    latencies = []
    with (
        _cluster(1, 1) as cluster,
        Client(cluster) as client,
        tempfile.TemporaryDirectory() as tmp,
    ):
        func: Any = spin
        seconds = DASK_SPIN_S
        if way == "aiointerp":
            client.register_plugin(InterpreterPlugin())
            func, seconds = in_interpreter(spin), 3600.0
        for i in range(samples):
            started, stopped = f"{tmp}/started{i}", f"{tmp}/stopped{i}"
            os.mkfifo(started)
            os.mkfifo(stopped)
            r_started = os.open(started, os.O_RDONLY | os.O_NONBLOCK)
            r_stopped = os.open(stopped, os.O_RDONLY | os.O_NONBLOCK)
            try:
                future = client.submit(func, started, stopped, seconds, pure=False)
                _wait(r_started, time.monotonic() + 60)
                cancelled = time.perf_counter()
                client.cancel(future)
                latencies.append(_wait(r_stopped, time.monotonic() + 60) - cancelled)
            finally:
                os.close(r_started)
                os.close(r_stopped)
    return latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--cores", type=int, default=2, help="workers/threads to use")
    args = parser.parse_args(argv)
    cores = args.cores
    chunk_s, per_core = (
        (CHUNK_S_QUICK, CHUNKS_PER_CORE_QUICK)
        if args.quick
        else (CHUNK_S, CHUNKS_PER_CORE)
    )
    samples = CANCEL_SAMPLES_QUICK if args.quick else CANCEL_SAMPLES
    rounds = 1 if args.quick else ROUNDS

    import logging

    import distributed

    logging.getLogger("distributed").setLevel(logging.WARNING)
    n = _work.calibrate(chunk_s)
    chunks = [n + i for i in range(cores * per_core)]  # distinct inputs, same cost
    for chunk in chunks:
        _expected(chunk)
    ways = [_Way(way, cores) for way in ("dask threads", "dask processes", "aiointerp")]
    sequential: list[float] = []
    try:
        for way in ways:
            way.run(chunks[: cores * 2], record=False)  # interpreters up, imports done
        for _ in range(rounds):  # interleaved: the machine's load touches all alike
            start = time.perf_counter()
            for chunk in chunks:
                _work.count_primes(chunk)
            sequential.append(time.perf_counter() - start)
            for way in ways:
                way.run(chunks)
        rss = {way.way: _worker_rss(way.client) for way in ways}
    finally:
        for way in ways:
            way.close()
    seq = statistics.median(sequential)
    print(
        f"Python {sys.version.split()[0]}, distributed {distributed.__version__}, "
        f"{cores} cores: {len(chunks)} chunks of count_primes({n}) "
        f"(~{chunk_s * 1000:.0f} ms each), medians of {rounds} interleaved rounds; "
        f"sequential in this process: {seq:.2f} s"
    )
    print()
    print(
        "| way | workers x threads | wall s | tasks/s | speed-up vs sequential "
        "| worker RSS MiB |"
    )
    print("|---|---|---|---|---|---|")
    wall = {}
    for way in ways:
        wall[way.way] = statistics.median(way.walls)
        print(
            f"| {way.way} | {way.shape} | {wall[way.way]:.2f} | "
            f"{len(chunks) / wall[way.way]:.1f} | {seq / wall[way.way]:.2f} | "
            f"{rss[way.way] / 2**20:.0f} |"
        )
    print()
    print(
        f"aiointerp: {wall['dask threads'] / wall['aiointerp']:.2f}x the speed of dask "
        f"threads, {wall['dask processes'] / wall['aiointerp']:.2f}x the speed of dask "
        f"processes with {rss['aiointerp'] / rss['dask processes']:.2f}x their worker "
        "memory"
    )
    print()
    print(
        "Cancel of a running pure-Python task, client.cancel -> its finally block ran:"
    )
    ours = _cancel_latency("aiointerp", samples)
    print(
        f"  aiointerp (InterpreterPlugin): median {statistics.median(ours) * 1000:.1f} ms, "
        f"max {max(ours) * 1000:.1f} ms over {samples} cancels"
    )
    theirs = _cancel_latency("dask threads", 1)
    print(
        f"  Dask alone: never stopped; the code ran to its end, {theirs[0]:.2f} s after "
        f"the cancel (a {DASK_SPIN_S:.0f} s spin)"
    )


if __name__ == "__main__":
    main()
