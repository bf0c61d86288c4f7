"""Dask tasks in subinterpreters: all cores in one worker process, cancels that stop.

Run: python examples/dask_cluster.py   (needs: pip install distributed)

A local cluster of one worker process with two threads; InterpreterPlugin gives it a
pool of two interpreters, so two pure-Python tasks run at once in that one process.
Then a task that would run forever is cancelled with client.cancel: the plugin
interrupts it inside its interpreter (Dask alone would let it run). Last, DaskPool:
the same calls from asyncio code.
"""

from __future__ import annotations

import asyncio
import logging
import time

from distributed import Client, LocalCluster

from aiointerp.dask import DaskPool, InterpreterPlugin, in_interpreter


def count_primes(stop: int) -> int:
    """Pure-Python CPU work: the primes below ``stop``."""
    count = 0
    for n in range(2, stop):
        for d in range(2, int(n**0.5) + 1):
            if n % d == 0:
                break
        else:
            count += 1
    return count


def forever() -> None:
    while True:
        pass


def busy_and_cancelled(dask_worker) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Run on the worker by client.run: calls running in its pool, calls cancelled."""
    stats = dask_worker.plugins["aiointerp"].pool.stats()
    return stats.busy, stats.cancelled


def wait_until(client: Client, wanted: tuple[int, int]) -> None:
    """Poll the only worker's pool until its (busy, cancelled) counts are ``wanted``."""
    deadline = time.monotonic() + 30
    while list(client.run(busy_and_cancelled).values()) != [wanted]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pool never reached {wanted}")
        time.sleep(0.01)


async def with_dask_pool(address: str) -> None:
    async with (
        Client(address, asynchronous=True) as client,
        DaskPool(client) as pool,
    ):
        print("DaskPool.run_sync:", await pool.run_sync(count_primes, 10_000))
        async for n in pool.map(count_primes, [100, 1_000]):
            print("DaskPool.map:", n)


def main() -> None:
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            host="127.0.0.1",
            dashboard_address=":0",  # any free port: 8787 may be taken
            worker_dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(InterpreterPlugin())  # one InterpreterPool per worker

        stops = [20_000, 30_000, 40_000, 50_000]
        futures = client.map(in_interpreter(count_primes), stops)  # run in parallel
        for stop, n in zip(stops, client.gather(futures), strict=True):
            print(f"primes below {stop}: {n}")

        future = client.submit(in_interpreter(forever))
        wait_until(client, (1, 0))  # it runs in an interpreter of the worker
        client.cancel(future)  # Dask alone lets a running task run to its end
        wait_until(client, (0, 1))  # interrupted: the pool's slot is free again
        print("the endless task was interrupted on its worker")

        asyncio.run(with_dask_pool(cluster.scheduler_address))


if __name__ == "__main__":  # the worker processes import this file again
    main()
