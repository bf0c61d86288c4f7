"""Ctrl-C at arbitrary moments never breaks the host<->worker protocol (stress tier).

Real child processes, real signals, sent by a thread of the child to its own process:

- tests/scripts/sigint_storm.py keeps calling a 1-worker pool, each call with its
  own token, while SIGINT arrives every 1-15 ms (trio: KeyboardInterrupt caught
  around each call; asyncio and uvloop: a loop signal handler that cancels the
  running call). No call may return another call's result, no exception but the
  app's KeyboardInterrupt or cancellation may reach it, no worker may be
  quarantined (the functions return within 5 ms), and after the storm the pool
  must still serve.
- tests/scripts/sigint_once.py sends one SIGINT 0-150 ms into a trio app that opens
  ``InterpreterPool(4, min_idle=4)`` and calls it, many times in one process:
  ``trio.run`` must raise KeyboardInterrupt every time, never TrioInternalError.
- tests/scripts/ki_everywhere.py raises KeyboardInterrupt, from a trace function, at
  each point of a call's host code where trio's SIGINT handler could (an eval-breaker
  check in a frame trio does not protect), one point per call, on a 1-worker pool:
  the deterministic version of the storm, which finds the one-instruction windows
  the storm hits only now and then.

``AIOINTERP_STORM_SECONDS`` (default 20 per event loop) and ``AIOINTERP_SIGINT_TRIES``
(default 60) shorten them for a quick local run; ``AIOINTERP_STORM_SEED`` replays a
failure's seed (given in its message; the signals' timing still differs).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import HAVE_UVLOOP, child_env

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
BACKENDS = ["asyncio", "trio", *(["uvloop"] if HAVE_UVLOOP else [])]
STORM_SECONDS = float(os.environ.get("AIOINTERP_STORM_SECONDS", "20"))
SIGINT_TRIES = int(os.environ.get("AIOINTERP_SIGINT_TRIES", "60"))
#: hang guard beyond the child's own work: start-up, the last call, closing the pool
HANG = 60.0
#: the child's per-try hang guard (sigint_once.DUMP_AFTER) plus its start-up
ONCE_HANG = 20.0 + HANG

pytestmark = pytest.mark.stress


def seed() -> int:
    return int(os.environ.get("AIOINTERP_STORM_SEED") or random.randrange(2**32))


def run_child(script: str, *args: object, timeout: float) -> tuple[list[Any], str]:
    """Run a child program; return its JSON lines and its stderr.

    A child that outlives ``timeout`` gets SIGABRT, so faulthandler prints every
    thread's stack, and the test fails with them.
    """
    process = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", str(SCRIPTS / script), *map(str, args)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        stdout, stderr = process.communicate(timeout=HANG)
        pytest.fail(
            f"{script} {args} did not end within {timeout} s\n"
            f"stdout:\n{stdout}\nthe child's stacks:\n{stderr}"
        )
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 and not lines:
        pytest.fail(f"{script} {args} exited {process.returncode}:\n{stderr}")
    return lines, stderr


def storm_problems(report: dict[str, Any]) -> list[str]:
    """Every property of the storm that did not hold, in words."""
    problems = []
    if report["wrong"]:
        problems.append(
            f"{report['wrong']} of {report['returned']} calls that returned got "
            f"another call's result: [token, result] {report['wrong_examples']}"
        )
    if report["exceptions"]:
        problems.append(
            f"the app saw exceptions besides its KeyboardInterrupt or cancellation: "
            f"{report['exceptions']}; the first:\n{report['first_exception']}"
        )
    if report["backend"] != "trio" and report["keyboard_interrupts"]:
        problems.append(
            f"{report['keyboard_interrupts']} KeyboardInterrupt on asyncio, where "
            "the loop's signal handler only cancels"
        )
    if report["hung"] is not None:
        problems.append(f"{report['hung']} waited 10 s: the pool stopped serving")
    if not report["final"]["ok"]:
        problems.append(f"the call after the storm failed: {report['final']}")
    stats = report["stats"]
    if stats["busy"] or stats["quarantined"]:
        problems.append(
            f"workers lost: busy={stats['busy']}, quarantined={stats['quarantined']} "
            "after the storm"
        )
    if report["max_quarantined"] or stats["abandoned"]:
        problems.append(
            f"code that returns within 5 ms was quarantined: {stats['abandoned']} "
            f"calls abandoned, up to {report['max_quarantined']} quarantined at once"
        )
    if stats["workers"] > stats["max_workers"]:
        problems.append(f"more workers than max_workers: {stats}")
    if report["warning_count"]:
        problems.append(
            f"{report['warning_count']} warnings from the pool: {report['warnings']}"
        )
    return problems


@pytest.mark.timeout(STORM_SECONDS + 2 * HANG)
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigint_storm_never_mixes_results_nor_loses_the_worker(backend: str) -> None:
    storm_seed = seed()
    lines, stderr = run_child(
        "sigint_storm.py",
        backend,
        STORM_SECONDS,
        storm_seed,
        timeout=STORM_SECONDS + HANG,
    )
    reports = [line for line in lines if "calls" in line]
    ends = [line["end"] for line in lines if "end" in line]
    assert reports, f"no report (seed {storm_seed}):\n{lines}\n{stderr}"
    report = reports[0]
    summary = {
        k: report[k] for k in ("calls", "returned", "keyboard_interrupts", "cancelled")
    }
    problems = storm_problems(report)
    if ends != ["ok"]:
        problems.append(f"the program ended with {ends}:\n{stderr}")
    assert not problems, (
        f"seed {storm_seed}, {report['signals']} SIGINTs, {summary}:\n"
        + "\n".join(problems)
    )
    # the stimulus worked: calls were interrupted, and calls got through
    assert report["signals"] > 0, report
    assert report["returned"] > 0, report
    assert report["keyboard_interrupts"] + report["cancelled"] > 0, report


@pytest.mark.timeout(SIGINT_TRIES * 20.0 + 2 * HANG)
def test_one_sigint_at_any_moment_gives_keyboard_interrupt_on_trio() -> None:
    once_seed = seed()
    lines, stderr = run_child(
        "sigint_once.py",
        SIGINT_TRIES,
        once_seed,
        timeout=SIGINT_TRIES * 5.0 + ONCE_HANG,
    )
    tries = [line for line in lines if "try" in line]
    wrong = [t for t in tries if t["outcome"] != "KeyboardInterrupt"]
    leaks = [t for t in tries if t.get("threads_left") or t.get("interpreters_left")]
    problems = [
        f"try {t['try']} (SIGINT after {t['delay']} s) ended with {t['outcome']} "
        f"after {t.get('took')} s:\n"
        f"{t.get('traceback', '')}"
        for t in wrong[:3]
    ]
    if wrong:
        problems.insert(
            0, f"{len(wrong)} of {len(tries)} tries did not end with KeyboardInterrupt"
        )
    if leaks:
        problems.append(
            f"{len(leaks)} tries left threads or interpreters behind: "
            + ", ".join(
                f"try {t['try']}: {t['threads_left']}, "
                f"{t['interpreters_left']} interpreters"
                for t in leaks[:3]
            )
        )
    noise = [
        line
        for line in stderr.splitlines()
        if line.startswith(("Exception in thread", "Exception ignored"))
    ]
    if noise:
        problems.append(
            f"{len(noise)} exceptions in threads or ignored ones: {noise[:3]}\n"
            f"{stderr[:3000]}"
        )
    if len(tries) != SIGINT_TRIES or lines[-1] != {"end": "ok"}:
        problems.append(
            f"{len(tries)} of {SIGINT_TRIES} tries reported; then:\n{stderr[-5000:]}"
        )
    assert not problems, f"seed {once_seed}:\n" + "\n".join(problems)


@pytest.mark.timeout(3 * HANG)
def test_keyboard_interrupt_at_every_point_of_a_call_on_trio() -> None:
    """The storm hits at random; this hits every interruptible point once, in order."""
    lines, stderr = run_child("ki_everywhere.py", timeout=2.5 * HANG)
    broken = [line for line in lines if "point" in line]
    summaries = [line for line in lines if "points" in line]
    ends = [line["end"] for line in lines if "end" in line]
    assert summaries, f"no summary:\n{lines}\n{stderr}"
    summary = summaries[0]
    problems = [
        f"KeyboardInterrupt at {line['point']}: {'; '.join(line['problems'])}"
        for line in broken
    ]
    if ends != ["ok"] and not summary["lost_pools"]:
        problems.append(f"the program ended with {ends}:\n{stderr[-5000:]}")
    assert not problems, f"{summary}:\n" + "\n".join(problems)
    # the stimulus worked (no point at all: the whole call path is KI-protected)
    assert summary["reached"] > 0 or summary["points"] == 0, summary
    assert summary["tried"] == summary["points"], summary
