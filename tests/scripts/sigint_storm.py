"""An app that keeps calling a 1-worker pool while SIGINT arrives every 1-15 ms.

``python sigint_storm.py BACKEND SECONDS SEED`` (BACKEND: asyncio, uvloop or trio):
opens ``InterpreterPool(1)``, starts a thread that sends SIGINT to this process at
random intervals of 1-15 ms, and calls the pool in a loop for SECONDS, each call
with its own token (returned at once, or after 1-5 ms of pure-Python work so that
signals land mid-call). Then the storm stops and one last call must succeed within
a hang guard. The findings are printed as one JSON line on stdout *before* the pool
closes (so that a hang at close still reports them), then ``{"end": ...}`` once the
event loop has ended; tests/face/test_sigint_storm.py asserts on them.

How the app survives the storm, as a real app would:

- trio: trio's own KeyboardInterrupt delivery (``trio.run``), caught around each
  call. The app's own frames are KI-protected (``enable_ki_protection``) so that a
  signal landing in the app's bookkeeping (the ``except`` clause, the counters) is
  delivered at the next checkpoint instead of escaping the loop; the call itself
  goes through a frame with protection *disabled*, so the library's code is exactly
  as exposed as in an ordinary trio app, whose code is unprotected.
- asyncio and uvloop: ``asyncio.run`` cancels the main task on the first SIGINT and
  raises KeyboardInterrupt at an arbitrary point on later ones, which no library can
  survive; so the app installs ``loop.add_signal_handler(SIGINT, ...)``, which
  cancels the running call's cancel scope: a storm of cancellations delivered
  through the loop.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import _funcs_storm as funcs
import anyio
import trio

import aiointerp

#: hang guard of one call: a call that waits this long lost its worker
CALL_HANG = 10.0
#: how many wrong results and warnings are listed in full
EXAMPLES = 5
#: the app stops calling after this many exceptions (a closed pool fails at once)
MAX_EXCEPTIONS = 20


class Storm:
    """A thread that sends SIGINT to this process every 1-15 ms, at random."""

    def __init__(self, seed: float) -> None:
        self.sent = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sigint storm")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop and join: no SIGINT is sent after this returns (one may be pending)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(self._rng.uniform(0.001, 0.015)):
            os.kill(pid, signal.SIGINT)
            self.sent += 1


class Warnings(logging.Handler):
    """Collect the pool's warnings (a false "did not stop" quarantine warning...)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Report:
    """What the app saw; printed as JSON."""

    def __init__(self, backend: str, seconds: float, seed: int) -> None:
        self.data: dict[str, Any] = {
            "backend": backend,
            "python": sys.version.split()[0],
            "seconds": seconds,
            "seed": seed,
            "calls": 0,
            "returned": 0,
            "keyboard_interrupts": 0,  # caught around a call (trio)
            "cancelled": 0,  # the call's scope cancelled by SIGINT (asyncio)
            "wrong": 0,
            "wrong_examples": [],
            "exceptions": collections.Counter(),
            "first_exception": None,  # its traceback
            "hung": None,  # the call that hit CALL_HANG, if one did
            "max_quarantined": 0,  # sampled before every call
            "late_interrupts": 0,  # a SIGINT still pending when the storm stopped
            "final": None,
        }

    def sample(self, stats: aiointerp.PoolStats) -> None:
        self.data["max_quarantined"] = max(
            self.data["max_quarantined"], stats.quarantined
        )

    def returned(self, token: str, result: object) -> None:
        self.data["returned"] += 1
        if result != token:
            self.data["wrong"] += 1
            if len(self.data["wrong_examples"]) < EXAMPLES:
                self.data["wrong_examples"].append([token, repr(result)])

    def exception(self, exc: BaseException) -> bool:
        """Count an exception; return whether the app should go on calling."""
        exceptions = self.data["exceptions"]
        exceptions[f"{type(exc).__module__}.{type(exc).__qualname__}"] += 1
        if self.data["first_exception"] is None:
            self.data["first_exception"] = "".join(traceback.format_exception(exc))
        return sum(exceptions.values()) < MAX_EXCEPTIONS

    def emit(self, **more: object) -> None:
        print(json.dumps({**self.data, **more}), flush=True)


class Target:
    """The cancel scope of the call running now (asyncio: SIGINT cancels it)."""

    scope: anyio.CancelScope | None = None
    storming = True

    def on_sigint(self) -> None:
        if self.storming and self.scope is not None:
            self.scope.cancel()


@trio.lowlevel.disable_ki_protection
async def call_unprotected(
    pool: aiointerp.InterpreterPool, func: Callable[..., str], *args: object
) -> str:
    """The call, as exposed to KeyboardInterrupt as any trio app's code is."""
    return await pool.run_sync(func, *args)


def next_call(
    rng: random.Random, index: int
) -> tuple[str, Callable[..., str], tuple[object, ...]]:
    token = f"call-{index}"
    if rng.random() < 0.5:
        return token, funcs.token, (token,)
    return token, funcs.spin_token, (token, rng.uniform(0.001, 0.005))


@trio.lowlevel.enable_ki_protection
async def app(backend: str, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    report = Report(backend, seconds, seed)
    warnings = Warnings()
    logging.getLogger("aiointerp").addHandler(warnings)
    target = Target()
    storm = Storm(rng.random())
    async with aiointerp.InterpreterPool(1) as pool:
        assert await pool.run_sync(funcs.token, "warm") == "warm"
        if backend != "trio":
            import asyncio

            asyncio.get_running_loop().add_signal_handler(
                signal.SIGINT, target.on_sigint
            )
        storm.start()
        try:
            end = time.monotonic() + seconds
            index = 0
            while time.monotonic() < end:
                index += 1
                report.sample(pool.stats())
                token, func, args = next_call(rng, index)
                report.data["calls"] += 1
                try:
                    with anyio.move_on_after(CALL_HANG) as guard:
                        with anyio.CancelScope() as scope:
                            target.scope = scope
                            result = await call_unprotected(pool, func, *args)
                        target.scope = None
                except KeyboardInterrupt:
                    target.scope = None
                    report.data["keyboard_interrupts"] += 1
                    continue
                except Exception as exc:
                    target.scope = None
                    if report.exception(exc):
                        continue
                    break
                if guard.cancelled_caught:
                    report.data["hung"] = token
                    break
                if scope.cancelled_caught:
                    report.data["cancelled"] += 1
                    continue
                report.returned(token, result)
        finally:
            target.storming = False
            storm.stop()
        report.data["final"] = await final_call(pool, report)
        stats = pool.stats()
        report.emit(
            signals=storm.sent,
            stats={name: getattr(stats, name) for name in stats.__slots__},
            warnings=warnings.messages[:EXAMPLES],
            warning_count=len(warnings.messages),
        )


async def final_call(pool: aiointerp.InterpreterPool, report: Report) -> dict[str, Any]:
    """One call after the storm: the pool must still serve, within the hang guard."""
    for _ in range(3):  # a SIGINT sent just before the storm stopped may be pending
        started = time.monotonic()
        try:
            with anyio.fail_after(CALL_HANG):
                result = await call_unprotected(pool, funcs.token, "final")
        except KeyboardInterrupt:
            report.data["late_interrupts"] += 1
            continue
        except Exception as exc:
            return {"ok": False, "error": repr(exc), "took": time.monotonic() - started}
        return {
            "ok": result == "final",
            "result": result,
            "took": time.monotonic() - started,
        }
    return {"ok": False, "error": "KeyboardInterrupt three times after the storm"}


def main() -> None:
    # a child of a shell's background job starts with SIGINT ignored; trio only
    # delivers KeyboardInterrupt when Python's default handler is installed
    signal.signal(signal.SIGINT, signal.default_int_handler)
    backend, seconds, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    try:
        if backend == "trio":
            trio.run(app, backend, seconds, seed)
        else:
            options = {"use_uvloop": True} if backend == "uvloop" else {}
            anyio.run(
                app, backend, seconds, seed, backend="asyncio", backend_options=options
            )
    except BaseException as exc:  # reported, then the test fails
        print(json.dumps({"end": repr(exc)}), flush=True)
        raise
    print(json.dumps({"end": "ok"}), flush=True)


if __name__ == "__main__":
    main()
