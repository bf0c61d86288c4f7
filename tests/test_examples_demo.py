"""The demo (``bash scripts/run.sh demo``) runs and verifies its results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_quick_runs_and_verifies_results() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--quick", "--jobs", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "results verified: all 5 ways returned the same 4 prime counts" in out
    for way in (
        "sequential (no event loop)",
        "anyio.to_thread on asyncio",
        "anyio.to_thread on trio",
        "aiointerp on asyncio",
        "aiointerp on trio",
    ):
        assert way in out
    assert "Traceback" not in proc.stderr


def test_demo_rejects_bad_arguments() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--jobs", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--jobs must be at least 1" in proc.stderr
