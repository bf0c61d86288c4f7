"""KeyboardInterrupt at every point where trio could raise it in a call's host code.

``python ki_everywhere.py [LIMIT]``: trio raises KeyboardInterrupt from its SIGINT
handler at the eval-breaker check that follows a call, a function start or resume,
or a backward jump, in any frame that is not KI-protected. A SIGINT storm hits those
points at random; this program hits each of them once, deterministically: it traces
one call of a 1-worker pool (``sys.settrace`` with opcode events, the event loop's
thread only) and lists every such point in aiointerp's own frames that trio would
not protect, then, for each point in turn, runs a call that raises
KeyboardInterrupt right there (from the trace function, which is what trio's
handler does) and checks, as an app that catches KeyboardInterrupt would:

- the interrupted call raised KeyboardInterrupt (or returned its own token);
- the next call returns its own token (not the interrupted call's), within a hang
  guard;
- then no worker is busy or quarantined, and the pool never warned.

One JSON line per point that broke a property, then a summary line
``{"points": N, "tried": M, "reached": R, "broken": K, "lost_pools": L, ...}``
(a pool that stopped serving or gave a wrong result is replaced; the run stops
after MAX_HUNG_POOLS pools stopped serving); tests/face/test_sigint_storm.py asserts
on them. LIMIT (default: all) tries at most that many points, spread evenly.
"""

from __future__ import annotations

import dis
import faulthandler
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import _funcs_storm as funcs
import trio
from trio._core._ki import ki_protection_enabled  # what trio's own handler asks

import aiointerp

PACKAGE = str(Path(aiointerp.__file__).resolve().parent)
#: instructions after which CPython checks the eval breaker (runs signal handlers)
CHECKED = {"CALL", "CALL_KW", "CALL_FUNCTION_EX", "RESUME", "JUMP_BACKWARD"}
#: hang guard of the call after an interrupted one
CALL_HANG = 5.0
#: stop after this many pools stopped serving (each costs CALL_HANG)
MAX_HUNG_POOLS = 5
#: hang guard of closing the pool once the points were tried: then every thread's
#: stack is dumped and the process exits
CLOSE_HANG = 15.0

Point = tuple[str, int, int]  # (code's qualified name, first line, instruction offset)
_ours: dict[CodeType, bool] = {}


def ours(code: CodeType) -> bool:
    try:
        return _ours[code]
    except KeyError:
        _ours[code] = result = str(Path(code.co_filename).resolve()).startswith(PACKAGE)
        return result


def point_of(frame: FrameType) -> Point:
    code = frame.f_code
    return (code.co_qualname, code.co_firstlineno, frame.f_lasti)


class Tracer:
    """Lists the interruptible points of aiointerp's frames, or raises at one."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.seen: set[Point] = set()
        self.target: Point | None = None
        self.fired = False

    def __call__(self, frame: FrameType, event: str, arg: object) -> Any:
        if event != "call" or not ours(frame.f_code):
            return None
        frame.f_trace_opcodes = True
        # the activation starts (or resumes) at a RESUME, which opcode events skip
        previous = ["RESUME"]

        def local(frame: FrameType, event: str, arg: object) -> Any:
            if event != "opcode":
                return local
            code = frame.f_code
            checked = previous[0] in CHECKED
            previous[0] = dis.opname[code.co_code[frame.f_lasti]]
            if not checked or ki_protection_enabled(frame):
                return local
            point = point_of(frame)
            if self.target is None:
                if point not in self.seen:
                    self.seen.add(point)
                    self.points.append(point)
            elif point == self.target and not self.fired:
                self.fired = True
                sys.settrace(None)
                raise KeyboardInterrupt(f"injected at {point}")
            return local

        frame.f_trace = local  # else CPython 3.13 skips this activation's opcodes
        return local


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@trio.lowlevel.disable_ki_protection
async def call(
    pool: aiointerp.InterpreterPool, func: Callable[..., str], *args: object
) -> str:
    """The call, as exposed to KeyboardInterrupt as any trio app's code is."""
    return await pool.run_sync(func, *args)


@trio.lowlevel.enable_ki_protection
async def main(limit: int | None) -> None:
    warnings = Warnings()
    logging.getLogger("aiointerp").addHandler(warnings)
    tracer = Tracer()
    summary: dict[str, Any] = {"python": sys.version.split()[0], "broken": 0}
    summary["lost_pools"] = hung = 0
    pool = await open_pool()
    sys.settrace(tracer)
    try:
        await call(pool, funcs.token, "listed")
    finally:
        sys.settrace(None)
    points = chosen = tracer.points
    if limit is not None and limit < len(points):
        chosen = [points[i * len(points) // limit] for i in range(limit)]
    summary.update(points=len(points), tried=0, reached=0)
    for index, point in enumerate(chosen):
        problems = await one_point(pool, tracer, point, index, warnings)
        summary["tried"] += 1
        summary["reached"] += tracer.fired
        if problems:
            summary["broken"] += 1
            print(json.dumps({"point": point, "problems": problems}), flush=True)
        if any("stopped serving" in p or " got " in p for p in problems):
            # a stale job or a lost slot poisons the later points: a new pool; this
            # one is left open, closing it could wait for the lost call forever
            summary["lost_pools"] += 1
            if any("stopped serving" in p for p in problems):
                hung += 1
                if hung == MAX_HUNG_POOLS:
                    break
            pool = await open_pool()
    print(json.dumps(summary), flush=True)
    if summary["lost_pools"]:
        lost = summary["lost_pools"]
        print(json.dumps({"end": f"exited, {lost} broken pools left open"}), flush=True)
        os._exit(1)  # the lost pools cannot be closed; this run has said what it saw
    faulthandler.dump_traceback_later(CLOSE_HANG, exit=True)
    await pool.aclose()


async def open_pool() -> aiointerp.InterpreterPool:
    pool = aiointerp.InterpreterPool(1)
    await call(pool, funcs.token, "warm")
    return pool


async def one_point(
    pool: aiointerp.InterpreterPool,
    tracer: Tracer,
    point: Point,
    index: int,
    warnings: Warnings,
) -> list[str]:
    problems: list[str] = []
    token = f"call-{index}"
    tracer.target, tracer.fired = point, False
    sys.settrace(tracer)
    try:
        result = await call(pool, funcs.token, token)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        problems.append(f"the call raised {''.join(traceback.format_exception(exc))}")
    else:
        if result != token:
            problems.append(f"the call got {result!r}")
    finally:
        sys.settrace(None)
    after = f"after-{index}"
    try:
        with trio.fail_after(CALL_HANG):
            result = await call(pool, funcs.token, after)
    except trio.TooSlowError:
        problems.append(f"the pool stopped serving: {pool.stats()}")
        return problems
    except Exception as exc:
        problems.append(f"the next call raised {exc!r}")
    else:
        if result != after:
            problems.append(f"the next call got {result!r}, not {after!r}")
    stats = pool.stats()
    if stats.busy or stats.quarantined or stats.abandoned:
        problems.append(f"workers lost: {stats}")
    if warnings.messages:
        problems.append(f"the pool warned: {warnings.messages}")
        warnings.messages.clear()
    return problems


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else None
    started = time.monotonic()
    try:
        trio.run(main, limit)
    except BaseException as exc:
        print(
            json.dumps({"end": repr(exc), "traceback": traceback.format_exc()}),
            flush=True,
        )
        raise
    print(json.dumps({"end": "ok", "took": time.monotonic() - started}), flush=True)
