"""Programs run as scripts: functions and classes of ``__main__``, blocked cloudpickle.

Each test starts a fresh Python (the one running the tests) on a script of
``tests/scripts/``; the scripts run aiointerp on asyncio and on trio themselves.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env

from aiointerp._inside._loop import _LOAD_NOTE

SCRIPTS = Path(__file__).parents[1] / "scripts"


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


# -- a main script that reads its command line at module level


@pytest.mark.parametrize("how", ["path", "module"])
def test_module_level_code_sees_the_hosts_command_line(how: str) -> None:
    # SCALE = int(sys.argv[1]) and argparse at module level, in both kinds of worker:
    # a process worker used to see its own argv (the fds of its channels)
    target = ["-m", "main_argv"] if how == "module" else ["main_argv.py"]
    lines = _run(*target, "1000", "--label", "big").splitlines()
    host = lines[0].removeprefix("host ")
    argv = ["1000", "--label", "big"]
    assert host.endswith(f"main_argv.py', {str(argv)[1:]}")
    assert (
        lines[1:]
        == [f"{kind} 1000 1000 big {host}" for kind in ("interpreter", "process")] * 2
    )


def test_module_level_argparse_that_exits_in_a_worker_fails_the_call() -> None:
    # the host empties sys.argv before the pools start: argparse exits in the workers
    process = subprocess.run(
        [sys.executable, "main_argv.py", "5", "--forget"],
        cwd=SCRIPTS,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=100,  # hang guard
        check=False,
    )
    assert process.returncode == 0, process.stderr
    lines = process.stdout.splitlines()
    assert lines[0] == "host ['main_argv.py']"
    blocks = [lines[i : i + 3] for i in (1, 4, 7, 10)]
    for kind, block in zip(["interpreter", "process"] * 2, blocks, strict=True):
        # each call fails with one clear error; the worker serves on (created: 1)
        assert block[2] == f"{kind} then 7 1"
        for line in block[:2]:
            assert line.startswith(
                f"{kind} UnguardedMainError the main script {SCRIPTS / 'main_argv.py'}"
                f" ran again inside an aiointerp worker {kind} "
            )
            assert "raised SystemExit: 2 (line 24: ARGS = parser.parse_args()" in line
            assert (
                "argparse rejected the command line sys.argv=['main_argv.py']" in line
            )
            assert 'guarded by `if __name__ == "__main__":`' in line
    # argparse's own complaint, once per worker: the failed script is not run again
    assert process.stderr.count("error: the following arguments are required") == 4


# -- a main script without the __name__ guard


def _run_unguarded(
    how: str, backend: str, *, calls: int = 1
) -> subprocess.CompletedProcess[str]:
    env = child_env()
    env["UNGUARDED_BACKEND"] = backend
    env["UNGUARDED_CALLS"] = str(calls)
    target = ["-m", "unguarded_main"] if how == "module" else [str(UNGUARDED)]
    return subprocess.run(
        [sys.executable, *target],
        cwd=SCRIPTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,  # hang guard: the nested pools
        check=False,
    )


UNGUARDED = SCRIPTS / "unguarded_main.py"
GUARD_HINT = 'must be guarded by `if __name__ == "__main__":`'
UNGUARDED_CASES = [
    pytest.param("path", "asyncio", id="asyncio"),
    pytest.param("path", "trio", id="trio"),
    pytest.param("module", "asyncio", id="asyncio-python-m"),
]


def _assert_one_clear_error(
    done: subprocess.CompletedProcess[str], how: str, backend: str, calls: int = 1
) -> None:
    assert done.returncode == 1, done.stderr
    # the top-level code ran in the host and once in the (only) worker, not per call
    lines = done.stdout.splitlines()
    assert [line.split(" interpreter ")[0] for line in lines[:2]] == [
        "top-level code runs in"
    ] * 2
    assert lines[2:] == ["caught UnguardedMainError"] * (calls - 1)
    err = done.stderr
    assert err.count(GUARD_HINT) == 1, err  # one clear error, said once
    (last,) = [line for line in err.splitlines() if "UnguardedMainError" in line]
    assert last.startswith(
        "aiointerp._inside._mainscript.UnguardedMainError: the main "
    )
    what = f"script {UNGUARDED}"
    if how == "module":
        what = "module unguarded_main (python -m unguarded_main)"
    assert f"the main {what} ran again in full inside an aiointerp worker" in last
    start = "trio.run(main)" if backend == "trio" else "asyncio.run(main())"
    assert re.search(rf"\(line \d+: {re.escape(start)}\)", last), last
    # the worker's traceback shows where the script used aiointerp, briefly
    assert "inside a worker running the main" in err
    assert "async with aiointerp.InterpreterPool(1) as pool" in err
    # none of the confusing failures of the nested pool
    assert "__mp_main__'" not in err
    assert _LOAD_NOTE.format("interpreter") not in err


@pytest.mark.parametrize(("how", "backend"), UNGUARDED_CASES)
def test_unguarded_main_script_is_one_clear_error(how: str, backend: str) -> None:
    _assert_one_clear_error(_run_unguarded(how, backend), how, backend)


def test_unguarded_main_script_runs_once_per_worker() -> None:
    # three calls through one worker: the script ran there once, each call got the error
    done = _run_unguarded("path", "asyncio", calls=3)
    _assert_one_clear_error(done, "path", "asyncio", calls=3)


def test_main_script_that_imports_fastapi_goes_by_value() -> None:
    # re-running the script in an interpreter imports pydantic_core, which refuses:
    # its function goes by value (cloudpickle), in an interpreter of this process
    output = _run(str(SCRIPTS / "web_main.py"))
    digest = "4e074085"
    assert (
        output.splitlines()
        == [f"{kind} {digest} this process 1 0" for kind in ("interpreter", "auto")] * 2
    )


def test_main_script_that_imports_fastapi_without_cloudpickle() -> None:
    output = _run(str(SCRIPTS / "web_main.py"), "no-cloudpickle")
    assert (
        output.splitlines()
        == [
            "interpreter ImportError pydantic_core._pydantic_core",
            "auto 4e074085 another process 0 1",
        ]
        * 2
    )
