"""Cancel latency: how soon cancelled code stops, and when its caller is released.

Run it with ``python -m benchmarks.cancel_latency`` from the repository root
(``--quick`` for a short run). Stdlib and anyio only.

* aiointerp: a code shape of :mod:`benchmarks._shapes` runs in a worker; it writes a
  start byte to a pipe once it runs, and its last cleanup (after every ``finally``
  and ``__exit__`` of the shape) writes a stop byte to another pipe. The host waits
  for the start byte, calls ``scope.cancel()``, and measures the time until the stop
  byte is readable (the code stopped, its cleanup done) and until the caller is
  released (its cancellation raised). N samples per event loop (asyncio, trio) for
  ``while True: pass``, and SHAPE_SAMPLES for each of the other shapes; p50, p99.
* anyio.to_interpreter.run_sync under a cancel scope: it does not interrupt the
  code, so the caller is released when the job ends. A 0.5 s CPU job, cancelled
  0.1 s after it started: the time from the cancel to the caller's release.

The benchmark suite reuses :func:`run`, which returns the figures (in seconds).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import tempfile
import time
from typing import Any

from benchmarks import _shapes

#: samples per event loop for aiointerp
SAMPLES = 200
SAMPLES_QUICK = 20
#: samples per shape and event loop in the per-shape table
SHAPE_SAMPLES = 50
SHAPE_SAMPLES_QUICK = 5
#: the shape of the headline figures
MAIN_SHAPE = "while_true_pass"
#: anyio.to_interpreter: job length, when it is cancelled, samples per event loop
JOB_SECONDS = 0.5
CANCEL_AFTER = 0.1
ANYIO_SAMPLES = 3
ANYIO_SAMPLES_QUICK = 1
BACKENDS = ("asyncio", "trio")


# -- code that runs in the workers (stdlib only) ---------------------------------------


def noop() -> None:
    return None


#: a builtin (importable in any interpreter): anyio's workers do not get our sys.path
noop_builtin = functools.partial(int)


# -- measurement -----------------------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "max": max(samples),
        "n": len(samples),
    }


async def _aiointerp_samples(n: int, shape: str) -> tuple[list[float], list[float]]:
    """(cancel → code stopped, cancel → caller released) for *n* cancelled calls."""
    import anyio

    import aiointerp

    stopped: list[float] = []
    released: list[float] = []
    start_r, start_w = os.pipe()
    stop_r, stop_w = os.pipe()
    tmp = tempfile.TemporaryDirectory()
    path = os.path.join(tmp.name, "cleanup")
    try:
        # one worker: each sample waits for the replacement of the interrupted
        # interpreter before it starts, so no creation overlaps a measurement
        async with aiointerp.InterpreterPool(1, cancel_grace=10.0) as pool:
            await pool.run_sync(noop)
            for _ in range(n):
                scope = anyio.CancelScope()
                times: dict[str, float] = {}

                async def call(
                    scope: anyio.CancelScope = scope, times: dict[str, float] = times
                ) -> None:
                    with scope:
                        await pool.run_sync(
                            _shapes.run_shape, shape, start_w, path, stop_w
                        )
                    times["released"] = time.perf_counter()

                with anyio.fail_after(60):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(call)
                        await anyio.wait_readable(start_r)
                        os.read(start_r, 8)
                        cancelled_at = time.perf_counter()
                        scope.cancel()
                        await anyio.wait_readable(stop_r)
                        stopped.append(time.perf_counter() - cancelled_at)
                        os.read(stop_r, 1)
                released.append(times["released"] - cancelled_at)
            if pool.stats().abandoned:  # pragma: no cover - would skew the figures
                raise RuntimeError(f"calls were abandoned: {pool.stats()}")
    finally:
        for fd in (start_r, start_w, stop_r, stop_w):
            os.close(fd)
        tmp.cleanup()
    return stopped, released


def _calibrate_job(seconds: float) -> int:
    """A ``sum(range(n))`` length that takes about *seconds* on this machine."""
    n = 1_000_000
    while True:
        began = time.perf_counter()
        sum(range(n))
        took = time.perf_counter() - began
        if took > 0.05:
            return int(n * seconds / took)
        n *= 4


async def _anyio_samples(n: int, job_length: int) -> tuple[list[float], list[float]]:
    """(cancel → caller released, call → caller released) for anyio.to_interpreter."""
    import anyio
    import anyio.to_interpreter

    job = functools.partial(sum, range(job_length))
    await anyio.to_interpreter.run_sync(noop_builtin)  # create the interpreter first
    released: list[float] = []
    elapsed: list[float] = []
    for _ in range(n):
        times: list[float] = []
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_later(
                    scope: anyio.CancelScope = scope, times: list[float] = times
                ) -> None:
                    await anyio.sleep(CANCEL_AFTER)
                    times.append(time.perf_counter())
                    scope.cancel()

                tg.start_soon(cancel_later)
                began = time.perf_counter()
                await anyio.to_interpreter.run_sync(job)
        now = time.perf_counter()
        released.append(now - times[0])
        elapsed.append(now - began)
    return released, elapsed


def run(quick: bool = False) -> dict[str, Any]:
    """Measure; return the figures in seconds (see the module docstring)."""
    import anyio

    n = SAMPLES_QUICK if quick else SAMPLES
    shape_n = SHAPE_SAMPLES_QUICK if quick else SHAPE_SAMPLES
    anyio_n = ANYIO_SAMPLES_QUICK if quick else ANYIO_SAMPLES
    job_length = _calibrate_job(JOB_SECONDS)
    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "samples": n,
        "job_seconds": JOB_SECONDS,
        "cancel_after": CANCEL_AFTER,
        "shape_samples": shape_n,
        "aiointerp": {},
        "shapes": {name: {} for name in _shapes.SHAPES},
        "anyio_to_interpreter": {},
    }
    for backend in BACKENDS:
        stopped, released = anyio.run(
            _aiointerp_samples, n, MAIN_SHAPE, backend=backend
        )
        results["aiointerp"][backend] = {
            "stopped": summary(stopped),
            "released": summary(released),
        }
        anyio_released, anyio_elapsed = anyio.run(
            _anyio_samples, anyio_n, job_length, backend=backend
        )
        results["anyio_to_interpreter"][backend] = {
            "released": summary(anyio_released),
            "elapsed": summary(anyio_elapsed),
        }
        for name in _shapes.SHAPES:
            stopped, released = anyio.run(
                _aiointerp_samples, shape_n, name, backend=backend
            )
            results["shapes"][name][backend] = {
                "stopped": summary(stopped),
                "released": summary(released),
            }
    results["ratio_release_p50"] = {
        backend: results["anyio_to_interpreter"][backend]["released"]["p50"]
        / results["aiointerp"][backend]["released"]["p50"]
        for backend in BACKENDS
    }
    return results


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f}"


def report(results: dict[str, Any]) -> str:
    lines = [
        f"cancel latency, Python {results['python']}, "
        f"{results['samples']} cancelled calls per event loop (ms)",
        f"{'':56} {'p50':>9} {'p99':>9} {'max':>9}",
    ]
    for backend in BACKENDS:
        mine = results["aiointerp"][backend]
        for what, label in (
            ("stopped", "cancel -> code stopped"),
            ("released", "cancel -> caller released"),
        ):
            fig = mine[what]
            lines.append(
                f"{f'aiointerp {backend}: {label}':56} "
                f"{_ms(fig['p50'])} {_ms(fig['p99'])} {_ms(fig['max'])}"
            )
    lines.append(
        f"cancel -> code stopped (cleanup done) per code shape, "
        f"{results['shape_samples']} cancels each (ms)"
    )
    lines.append(
        f"{'':24}"
        + "".join(
            f"{f'{backend} p50':>13}{f'{backend} p99':>13}" for backend in BACKENDS
        )
    )
    for name, by_backend in results["shapes"].items():
        lines.append(
            f"{name:24}"
            + "".join(
                f"{_ms(by_backend[backend]['stopped']['p50']):>13}"
                f"{_ms(by_backend[backend]['stopped']['p99']):>13}"
                for backend in BACKENDS
            )
        )
    for backend in BACKENDS:
        fig = results["anyio_to_interpreter"][backend]["released"]
        label = f"anyio.to_interpreter {backend}: cancel -> released (n={fig['n']})"
        lines.append(
            f"{label:56} {_ms(fig['p50'])} {_ms(fig['p99'])} {_ms(fig['max'])}"
        )
    elapsed = max(
        results["anyio_to_interpreter"][backend]["elapsed"]["p50"]
        for backend in BACKENDS
    )
    lines.append(
        f"anyio.to_interpreter waits for the job to end (~{results['job_seconds']} s, "
        f"took {elapsed:.2f} s; cancelled after {results['cancel_after']} s); "
        "aiointerp interrupts it."
    )
    for backend in BACKENDS:
        lines.append(
            f"ratio of caller release p50, anyio / aiointerp ({backend}): "
            f"{results['ratio_release_p50'][backend]:.0f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args()
    print(report(run(quick=args.quick)))


if __name__ == "__main__":
    main()
