"""Sampling profilers (sys._current_frames() from another thread) beside interpreters.

CPython 3.13.0 aborts the process when another thread calls sys._current_frames()
while an interpreter runs code (docs/limitations.md); 3.13.18, 3.14 and 3.15 do not.
The program runs in a child process: where the defect holds it would take pytest
down with it. There, the test checks that aiointerp warned about it instead.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import child_env

from aiointerp._host import _defects

TESTS = Path(__file__).resolve().parents[1]
CRASHES_HERE = any(defect.warn for defect in _defects.defects_of())


def _run_sampler() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TESTS / "scripts" / "sample_frames.py")],
        env={**child_env(), "PYTHONWARNINGS": ""},  # the warning is what we check
        capture_output=True,
        text=True,
        timeout=100,  # hang guard
        check=False,
    )


def test_sampling_profiler_beside_calls() -> None:
    process = _run_sampler()
    if CRASHES_HERE:  # 3.13.0: it may well abort, but not without a warning first
        assert "RuntimeWarning: CPython 3.13.0 has a defect" in process.stderr
        assert "sys._current_frames()" in process.stderr
        return
    assert process.returncode == 0, process.stderr
    assert process.stdout.splitlines() == ["asyncio True", "trio True", "samples True"]
    assert "RuntimeWarning" not in process.stderr


def test_defect_table() -> None:
    (crash,) = [d for d in _defects.defects_of((3, 13, 0)) if d.warn]
    assert "sys._current_frames()" in crash.summary
    assert not any(d.warn for d in _defects.defects_of((3, 13, 18)))
    assert _defects.defects_of((3, 14, 10)) == []
    assert len(_defects.defects_of((3, 13, 18))) == 2


def test_defect_table_is_cpythons(monkeypatch: pytest.MonkeyPatch) -> None:
    # another implementation has none of CPython's defects, whatever its version
    other = types.SimpleNamespace(**vars(sys.implementation))
    other.name = "pypy"
    monkeypatch.setattr(sys, "implementation", other)
    assert _defects.defects_of((3, 13, 0)) == []
    assert _defects.defects_of() == []
