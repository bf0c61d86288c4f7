"""The demo (``bash scripts/run.sh demo``) runs and verifies its results."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

from aiointerp._host._defects import defects_of

ROOT = Path(__file__).resolve().parents[2]


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


# -- which Python `bash scripts/run.sh demo` sets up (scripts/run.sh which demo)

RUN_SH = ROOT / "scripts" / "run.sh"
CRASH = "sys._current_frames() aborts"


def _fake_python(path: Path, version: str | None, defect: str = "") -> None:
    """A stand-in for a Python: answers run.sh's probe as such a Python would.

    ``version=None``: not a supported CPython (the probe fails, as it does for 3.12
    or a free-threaded build).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if version is None:
        body = "exit 1\n"
    else:
        line = f"{version}\\t{path}\\t{defect}"
        body = (
            'case "$*" in\n'
            f"  *_defects*) printf '{line}\\n' ;;\n"  # the demo's probe
            "esac\n"
        )
    path.write_text(f"#!/bin/sh\n{body}")
    path.chmod(0o755)


def _which(
    tmp_path: Path,
    mode: str,
    pyenv_versions: dict[str, tuple[str | None, str]] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``run.sh which MODE`` with only the fake Pythons of tmp_path/bin to find."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if pyenv_versions is not None:
        root = tmp_path / "pyenv"
        for name, (version, defect) in pyenv_versions.items():
            _fake_python(root / "versions" / name / "bin" / "python3", version, defect)
        pyenv = bin_dir / "pyenv"
        pyenv.write_text(f'#!/bin/sh\n[ "$1" = root ] && echo "{root}"\n')
        pyenv.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",  # bash and coreutils; no real pyenv
        "AIOINTERP_SEARCH_DIRS": "",
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        ["bash", str(RUN_SH), "which", mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_picks_the_newest_python(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir / "python3.13", "3.13.18")
    _fake_python(bin_dir / "python3.14", "3.14.2")
    _fake_python(bin_dir / "python3", None)  # e.g. 3.11
    proc = _which(tmp_path, "demo", {"3.15.1": ("3.15.1", ""), "3.12.1": (None, "")})
    assert proc.returncode == 0, proc.stderr
    newest = tmp_path / "pyenv" / "versions" / "3.15.1" / "bin" / "python3"
    assert proc.stdout == f"{newest}\n"
    assert proc.stderr == (
        f"== demo Python: CPython 3.15.1 ({newest}): the newest supported Python found\n"
    )


def test_demo_passes_over_a_release_with_a_crash_defect(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir / "python3.19", "3.19.0", CRASH)
    _fake_python(bin_dir / "python3.13", "3.13.18")
    proc = _which(tmp_path, "demo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{bin_dir / 'python3.13'}\n"
    assert proc.stderr == (
        f"== demo Python: CPython 3.13.18 ({bin_dir / 'python3.13'}): the newest "
        "supported Python found without a known crash defect; passed over CPython "
        f"3.19.0 ({bin_dir / 'python3.19'}), which has a known crash defect: {CRASH}\n"
    )


def test_demo_on_the_only_python_found_says_it_has_a_defect(tmp_path: Path) -> None:
    proc = _which(tmp_path, "demo", {"3.13.0": ("3.13.0", CRASH)})
    assert proc.returncode == 0, proc.stderr
    only = tmp_path / "pyenv" / "versions" / "3.13.0" / "bin" / "python3"
    assert proc.stdout == f"{only}\n"
    assert proc.stderr.startswith(
        f"== demo Python: CPython 3.13.0 ({only}): the newest supported Python found, "
        f"though it has a known crash defect: {CRASH}. The demo does not trigger it"
    )
    assert "pyenv install 3.13" in proc.stderr


def test_no_python_found(tmp_path: Path) -> None:
    _fake_python(tmp_path / "bin" / "python3", None)
    for mode in ("demo", "test"):
        proc = _which(tmp_path, mode)
        assert proc.returncode == 3
        assert proc.stdout == ""
        assert "aiointerp needs CPython >= 3.13 with subinterpreters" in proc.stderr


def test_the_test_command_keeps_its_choice(tmp_path: Path) -> None:
    # the first Python of PATH's python3.15 ... python3, not the newest: CI relies on it
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir / "python3.13", "3.13.0", CRASH)
    _fake_python(bin_dir / "python3.19", "3.19.0")
    proc = _which(tmp_path, "test", {"3.15.1": ("3.15.1", "")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{bin_dir / 'python3.13'}\n"


def test_the_probe_on_this_python(tmp_path: Path) -> None:
    # the real probe of run.sh, run by this Python: its version, its defect or none
    link = tmp_path / "bin" / "python3.13"
    link.parent.mkdir()
    link.symlink_to(sys.executable)
    proc = _which(tmp_path, "demo")
    assert proc.returncode == 0, proc.stderr
    version = platform.python_version()
    assert f"== demo Python: CPython {version} (" in proc.stderr
    crashes = any(d.warn for d in defects_of())
    assert ("known crash defect" in proc.stderr) == crashes
