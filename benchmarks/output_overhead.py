"""Output forwarding: what it costs a call that prints nothing, and one that prints.

Run it with ``python -m benchmarks.output_overhead`` from the repository root
(``--quick`` for a short run). Stdlib and anyio only.

For each kind of worker (interpreter, process), two pools of one worker each,
``forward_output=True`` (the default) and ``False``, take turns in the same run
(rounds interleaved, so the machine's noise hits both) with a trivial call that
prints nothing: the hot path, which must not change (ratio on/off). Then a call that
prints one line, through both pools: with forwarding the line travels to the host
and is written to its ``sys.stdout`` (here a sink that drops it) before the result
returns; without, the worker writes it to file descriptor 1 itself (here
``/dev/null``, through the worker's own buffered stream). Medians per round trip,
on asyncio and trio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

from benchmarks import _work

ROUNDS = 10
ROUNDS_QUICK = 3
CALLS = 500
BACKENDS = ("asyncio", "trio")
KINDS = ("interpreter", "process")
SERIES = ("no output, on", "no output, off", "1 line, on", "1 line, off")


def print_one(x: int) -> int:
    """Worker side: print one short line, return."""
    print("value", x)
    return x


class _Sink:
    """The host's sys.stdout during the measure: accepts text, keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """fd 1 to /dev/null (workers without forwarding) and sys.stdout to a sink."""
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        with contextlib.redirect_stdout(_Sink()):  # type: ignore[type-var]
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


async def _measure(kind: str, rounds: int) -> dict[str, float]:
    import aiointerp

    per_call: dict[str, list[float]] = {label: [] for label in SERIES}
    async with (
        aiointerp.InterpreterPool(1, kind=kind, forward_output=True) as on,
        aiointerp.InterpreterPool(1, kind=kind, forward_output=False) as off,
    ):
        for pool in (on, off):  # warm: worker started, functions imported
            await pool.run_sync(_work.noop, 1)
            await pool.run_sync(print_one, 1)
        for _ in range(rounds):
            for label, pool, func in (
                ("no output, on", on, _work.noop),
                ("no output, off", off, _work.noop),
                ("1 line, on", on, print_one),
                ("1 line, off", off, print_one),
            ):
                began = time.perf_counter()
                for i in range(CALLS):
                    await pool.run_sync(func, i)
                per_call[label].append((time.perf_counter() - began) / CALLS)
    return {label: statistics.median(times) for label, times in per_call.items()}


def run(quick: bool = False) -> dict[str, Any]:
    import anyio

    rounds = ROUNDS_QUICK if quick else ROUNDS
    results: dict[str, Any] = {"python": sys.version.split()[0], "calls": CALLS}
    with _quiet():
        for kind in KINDS:
            results[kind] = {
                backend: anyio.run(_measure, kind, rounds, backend=backend)
                for backend in BACKENDS
            }
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        f"output forwarding, Python {results['python']}: median µs per call, "
        "one worker",
        f"{'':22}{'no output, on':>14}{'off':>8}{'on/off':>8}"
        f"{'1 line, on':>12}{'off':>8}{'on/off':>8}{'added':>8}",
    ]
    for kind in KINDS:
        for backend in BACKENDS:
            fig = results[kind][backend]
            quiet_on, quiet_off = fig["no output, on"], fig["no output, off"]
            line_on, line_off = fig["1 line, on"], fig["1 line, off"]
            lines.append(
                f"{kind + ', ' + backend:22}{quiet_on * 1e6:14.1f}"
                f"{quiet_off * 1e6:8.1f}{quiet_on / quiet_off:8.2f}"
                f"{line_on * 1e6:12.1f}{line_off * 1e6:8.1f}"
                f"{line_on / line_off:8.2f}{(line_on - line_off) * 1e6:8.1f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    print(report(run(quick=args.quick)))


if __name__ == "__main__":
    main()
