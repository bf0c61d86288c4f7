"""Log forwarding: what it costs a call that does not log, and one that does.

Run it with ``python -m benchmarks.logging_overhead`` from the repository root
(``--quick`` for a short run). Stdlib and anyio only.

Two pools of one worker each, ``forward_logging=True`` (the default) and ``False``,
take turns in the same run (rounds interleaved, so the machine's noise hits both)
with a trivial call that does not log: the hot path, which must not change (ratio
on/off). Then the same call logging one INFO record through the forwarding pool,
handled on the host by a handler that drops it: what forwarding a record adds.
Medians per round trip, on asyncio and trio.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from typing import Any

from benchmarks import _work

ROUNDS = 20
ROUNDS_QUICK = 4
CALLS = 500
BACKENDS = ("asyncio", "trio")


def log_one(x: int) -> int:
    """Worker side: log one record, return."""
    logging.getLogger("benchmarks.logging_overhead").info("value %d", x)
    return x


async def _measure(rounds: int) -> dict[str, dict[str, float]]:
    import aiointerp

    per_call: dict[str, list[float]] = {"on": [], "off": [], "one record": []}
    async with (
        aiointerp.InterpreterPool(1, forward_logging=True) as on,
        aiointerp.InterpreterPool(1, forward_logging=False) as off,
    ):
        for pool in (on, off):  # warm: worker started, functions imported
            await pool.run_sync(_work.noop, 1)
        await on.run_sync(log_one, 1)
        for _ in range(rounds):
            for label, pool, func in (
                ("on", on, _work.noop),
                ("off", off, _work.noop),
                ("one record", on, log_one),
            ):
                began = time.perf_counter()
                for i in range(CALLS):
                    await pool.run_sync(func, i)
                per_call[label].append((time.perf_counter() - began) / CALLS)
    return {label: statistics.median(times) for label, times in per_call.items()}


def run(quick: bool = False) -> dict[str, Any]:
    import anyio

    host = logging.getLogger("benchmarks.logging_overhead")
    host.setLevel(logging.INFO)
    host.addHandler(logging.NullHandler())
    host.propagate = False
    results: dict[str, Any] = {"python": sys.version.split()[0], "calls": CALLS}
    for backend in BACKENDS:
        results[backend] = anyio.run(
            _measure, ROUNDS_QUICK if quick else ROUNDS, backend=backend
        )
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        f"log forwarding, Python {results['python']}: median µs per call, one worker",
        f"{'':10}{'no log, on':>12}{'off':>10}{'on/off':>10}{'1 record':>12}"
        f"{'added':>10}",
    ]
    for backend in BACKENDS:
        fig = results[backend]
        lines.append(
            f"{backend:10}{fig['on'] * 1e6:12.1f}{fig['off'] * 1e6:10.1f}"
            f"{fig['on'] / fig['off']:10.2f}{fig['one record'] * 1e6:12.1f}"
            f"{(fig['one record'] - fig['on']) * 1e6:10.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    print(report(run(quick=args.quick)))


if __name__ == "__main__":
    main()
