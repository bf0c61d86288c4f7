"""Programs run as scripts: functions and classes of ``__main__``, blocked cloudpickle.

Each test starts a fresh Python (the one running the tests) on a script of
``tests/scripts/``; the scripts run aiointerp on asyncio and on trio themselves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import child_env

SCRIPTS = Path(__file__).parent / "scripts"


def _run(*args: str, cwd: Path = SCRIPTS) -> str:
    process = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=100,  # hang guard
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    return process.stdout


MAIN_OUTPUT = [
    f"{backend} __main__.Point {x} {y} __mp_main__"
    for backend in ("asyncio", "trio")
    for x, y in ((1, 2), (3, 4))
]


def test_main_script_functions_and_classes() -> None:
    # run by path, from another directory: the worker finds the file by its path
    output = _run(str(SCRIPTS / "main_script.py"), cwd=SCRIPTS.parent)
    assert output.splitlines() == MAIN_OUTPUT


def test_main_module_functions_and_classes() -> None:
    # python -m: the worker imports the module again by name, as __mp_main__
    output = _run("-m", "main_script")
    assert output.splitlines() == MAIN_OUTPUT


def test_lambdas_and_closures_without_cloudpickle() -> None:
    lines = _run(str(SCRIPTS / "no_cloudpickle.py")).splitlines()
    assert len(lines) == 4
    for line, backend, name in zip(
        lines,
        ["asyncio", "asyncio", "trio", "trio"],
        ["main.<locals>.<lambda>", "make_closure.<locals>.add_offset"] * 2,
        strict=True,
    ):
        assert line.startswith(f"{backend}: cannot send function __main__.{name}")
        assert "define it at module level" in line
        assert "cloudpickle" in line
