"""Output flooded between calls: what the host holds, and how long its loop stalls.

Run it with ``python -m benchmarks.output_flood`` from the repository root
(``--idle SECONDS``, 3 by default). Stdlib and anyio only.

For each kind of worker (interpreter, process), each event loop (asyncio, trio) and
each flood (``print``: a thread printing 71-character lines as fast as it can;
``log``: a thread logging WARNING records as fast as it can), one pool of one worker:

1. a call starts the flooding thread and returns; the pool then sits idle for
   ``--idle`` seconds: ``held`` is how much the host's RSS grew meanwhile (what the
   host holds of the worker's output, plus noise), and ``idle lag`` the event loop's
   lag meanwhile (the noise floor: the flood takes a core);
2. ``next call``: a trivial call while the thread still floods (its duration, and the
   event loop's lag meanwhile: a ticker task sleeps 1 ms in a loop, its lag is how
   much later than asked it wakes up; max and p99 of the sleeps that overlapped the
   call);
3. ``stop``: a call that stops the thread (duration and lag too), then the pool
   closes (``close``: its duration).

The host's ``sys.stdout`` is ``/dev/null`` (a real file, written as a terminal would
be); its root logger writes to ``/dev/null`` too. The flood has a hang guard: it
stops by itself after 60 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from benchmarks._stats import fmt_bytes, fmt_time, percentile

BACKENDS = ("asyncio", "trio")
KINDS = ("interpreter", "process")
FLOODS = ("print", "log")
IDLE = 3.0
TICK = 0.001
#: the flood stops by itself after this long (a hang guard)
FLOOD_GUARD = 60.0

# -- code that runs in the worker (stdlib only) ------------------------------------------

_stop = threading.Event()


def start_flood(mode: str) -> int:
    """Start a thread that prints (or logs) as fast as it can until stop_flood()."""
    _stop.clear()
    deadline = time.monotonic() + FLOOD_GUARD

    def run() -> None:
        line = "x" * 70
        if mode == "print":
            while not _stop.is_set() and time.monotonic() < deadline:
                print(line)
            return
        import logging

        log = logging.getLogger("benchmarks.flood")
        i = 0
        while not _stop.is_set() and time.monotonic() < deadline:
            log.warning("flood %d %s", i, line)
            i += 1

    threading.Thread(target=run, name="flood").start()
    return 0


def stop_flood() -> int:
    _stop.set()
    return 0


def noop() -> int:
    return 0


# -- host side ----------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def _sinks() -> Iterator[None]:
    """The host's sys.stdout, sys.stderr and root logger write to /dev/null."""
    import logging

    with open(os.devnull, "w") as null:
        handler = logging.StreamHandler(null)
        root = logging.getLogger()
        root.addHandler(handler)
        saved = root.handlers[:]
        root.handlers[:] = [handler]
        try:
            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
        finally:
            root.handlers[:] = saved
            root.removeHandler(handler)


class _Ticker:
    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (start, end, lag)
        self.running = True

    async def run(self) -> None:
        import anyio

        while self.running:
            began = time.perf_counter()
            await anyio.sleep(TICK)
            ended = time.perf_counter()
            self.samples.append((began, ended, ended - began - TICK))

    def lag(self, start: float, end: float) -> tuple[float, float]:
        """Max and p99 of the lag of the sleeps that ended in [start, end + 20 ms]
        (the one a stall held up ends just after it)."""
        lags = [lag for _, e, lag in self.samples if start <= e <= end + 0.02]
        return (max(lags, default=0.0), percentile(lags, 0.99))


async def _measure(kind: str, flood: str, idle: float) -> dict[str, float]:
    import anyio

    import aiointerp

    ticker = _Ticker()
    figures: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker.run)
        pool = aiointerp.InterpreterPool(1, kind=kind)
        await pool.run_sync(noop)  # started, module imported
        await pool.run_sync(start_flood, flood)
        rss0 = _rss()
        began = time.perf_counter()
        await anyio.sleep(idle)
        windows["idle"] = (began + 0.1, time.perf_counter() - 0.02)
        figures["held"] = _rss() - rss0
        for label, func in (("next call", noop), ("stop", stop_flood)):
            began = time.perf_counter()
            await pool.run_sync(func)
            ended = time.perf_counter()
            figures[label] = ended - began
            windows[label] = (began, ended)
            await anyio.sleep(0.05)  # apart: the ticker wakes from a stall in here
        began = time.perf_counter()
        await pool.aclose()
        figures["close"] = time.perf_counter() - began
        ticker.running = False
    for label, (began, ended) in windows.items():
        figures[f"{label} lag max"], figures[f"{label} lag p99"] = ticker.lag(
            began, ended
        )
    return figures


def run_case(kind: str, flood: str, backend: str, idle: float) -> dict[str, float]:
    """One case, in this process."""
    import anyio

    with _sinks():
        return anyio.run(_measure, kind, flood, idle, backend=backend)


def run(idle: float = IDLE) -> dict[str, Any]:
    """Every case, each in a fresh process (its RSS starts from the same place)."""
    import json
    import subprocess

    results: dict[str, Any] = {"python": sys.version.split()[0], "idle": idle}
    for kind in KINDS:
        for flood in FLOODS:
            for backend in BACKENDS:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.output_flood",
                        "--idle",
                        str(idle),
                        "--case",
                        f"{kind},{flood},{backend}",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                results[f"{kind}, {flood}, {backend}"] = json.loads(out)
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        f"output flooded between calls, Python {results['python']}, "
        f"{results['idle']:g} s idle",
        f"{'':28}{'held':>10}{'idle lag':>10}{'p99':>9}{'next call':>11}"
        f"{'lag max':>10}{'p99':>9}{'stop':>10}{'lag max':>10}{'p99':>9}"
        f"{'close':>10}",
    ]
    for key, fig in results.items():
        if not isinstance(fig, dict):
            continue
        lines.append(
            f"{key:28}{fmt_bytes(fig['held']):>10}"
            f"{fmt_time(fig['idle lag max']):>10}{fmt_time(fig['idle lag p99']):>9}"
            f"{fmt_time(fig['next call']):>11}"
            f"{fmt_time(fig['next call lag max']):>10}"
            f"{fmt_time(fig['next call lag p99']):>9}{fmt_time(fig['stop']):>10}"
            f"{fmt_time(fig['stop lag max']):>10}{fmt_time(fig['stop lag p99']):>9}"
            f"{fmt_time(fig['close']):>10}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=IDLE, help="seconds idle")
    parser.add_argument("--case", help="kind,flood,backend: one case, as JSON")
    args = parser.parse_args()
    if args.case:
        import json

        kind, flood, backend = args.case.split(",")
        figures = run_case(kind, flood, backend, args.idle)
        print(json.dumps(figures), file=sys.__stdout__)
        return
    print(report(run(idle=args.idle)))


if __name__ == "__main__":
    main()
