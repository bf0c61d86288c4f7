"""Exceptions sent back from workers: the record encoding against plain pickle.

Run it with ``python -m benchmarks.exception_encoding`` from the repository root
(``--quick`` for a short run). Stdlib and anyio only.

In-process, both halves of each way, per exception (medians of interleaved rounds):

* ``pickle``: what aiointerp did before ``aiointerp._wire._exceptions``: ``pickle.dumps``
  and a checking ``pickle.loads`` in the worker, ``pickle.loads`` in the caller (it
  cannot rebuild ``QuotaExceeded``: that row times its RemoteError path);
* ``records``: :func:`aiointerp._wire._exceptions.encode` then :func:`aiointerp._wire._rebuild.rebuild`;
* ``traceback``: ``traceback.format_exception``, which the worker pays for every
  exception either way (the remote traceback text), for scale.

Then a whole call raising ``Quota`` through a pool of one worker, against a call
that returns.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from benchmarks import _work

ROUNDS = 15
ROUNDS_QUICK = 3
REPEAT = 2000
CALLS = 300


class Quota(Exception):
    """The custom exception plain pickle cannot rebuild."""

    def __init__(self, user: str, used: int) -> None:
        super().__init__(f"{user} used {used}")
        self.user = user
        self.used = used


class Coded(Exception):
    """A picklable custom exception with state."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def raise_quota(used: int) -> None:
    """Worker side: the failing call of the pool measurement."""
    raise Quota("alice", used)


def _raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as error:
        return error


def _shapes() -> dict[str, Exception]:
    chained = Quota("carol", 2)
    chained.__cause__ = FileNotFoundError(2, "gone", "/x")
    return {
        "ValueError": _raised(ValueError("bad", 42)),
        "KeyError": _raised(KeyError("k")),
        "Coded": _raised(Coded(7, "detail")),
        "FileNotFoundError": _raised(FileNotFoundError(2, "gone", "/x")),
        "Quota": _raised(Quota("alice", 3)),
        "Quota from OSError": _raised(chained),
    }


def _pickle_way(exc: Exception) -> object:
    from aiointerp import RemoteError, RemoteTraceback

    blob = pickle.dumps(exc, 5)
    try:
        pickle.loads(blob)  # the worker's check
    except Exception:
        return RemoteError(type(exc).__qualname__, str(exc), "text")
    rebuilt = pickle.loads(blob)
    rebuilt.__cause__ = RemoteTraceback("text")
    return rebuilt


def _records_way(exc: Exception) -> object:
    from aiointerp._wire import _exceptions, _rebuild

    return _rebuild.rebuild(_exceptions.encode(exc), "text")


def _per_call(func: Callable[[Exception], object], exc: Exception) -> float:
    began = time.perf_counter()
    for _ in range(REPEAT):
        func(exc)
    return (time.perf_counter() - began) / REPEAT


def _in_process(rounds: int) -> dict[str, dict[str, float]]:
    ways: dict[str, Callable[[Exception], object]] = {
        "pickle": _pickle_way,
        "records": _records_way,
        "traceback": traceback.format_exception,
    }
    results: dict[str, dict[str, float]] = {}
    for name, exc in _shapes().items():
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(rounds):
            for way, func in ways.items():
                times[way].append(_per_call(func, exc))
        results[name] = {way: statistics.median(t) for way, t in times.items()}
    return results


async def _through_pool(rounds: int) -> dict[str, float]:
    import aiointerp

    per_call: dict[str, list[float]] = {"returns": [], "raises": []}
    async with aiointerp.InterpreterPool(1) as pool:
        for func in (_work.noop, raise_quota):  # warm
            try:
                await pool.run_sync(func, 1)
            except Exception:
                pass
        for _ in range(rounds):
            for label, func in (("returns", _work.noop), ("raises", raise_quota)):
                began = time.perf_counter()
                for i in range(CALLS):
                    try:
                        await pool.run_sync(func, i)
                    except Exception:
                        pass
                per_call[label].append((time.perf_counter() - began) / CALLS)
    return {label: statistics.median(t) for label, t in per_call.items()}


def run(quick: bool = False) -> dict[str, Any]:
    import anyio

    rounds = ROUNDS_QUICK if quick else ROUNDS
    return {
        "python": sys.version.split()[0],
        "in_process": _in_process(rounds),
        "pool": anyio.run(_through_pool, rounds),
    }


def report(results: dict[str, Any]) -> str:
    lines = [
        f"exception encoding, Python {results['python']}: median µs per exception",
        f"{'':20}{'pickle':>9}{'records':>9}{'ratio':>7}{'traceback':>11}",
    ]
    for name, fig in results["in_process"].items():
        lines.append(
            f"{name:20}{fig['pickle'] * 1e6:9.1f}{fig['records'] * 1e6:9.1f}"
            f"{fig['records'] / fig['pickle']:7.2f}{fig['traceback'] * 1e6:11.1f}"
        )
    pool = results["pool"]
    lines.append(
        f"one worker, µs per call: returns {pool['returns'] * 1e6:.1f}, raises "
        f"{pool['raises'] * 1e6:.1f} (ratio {pool['raises'] / pool['returns']:.2f})"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    print(report(run(quick=args.quick)))


if __name__ == "__main__":
    main()
