"""``python -m aiointerp check`` / ``info``, and the generator of docs/compatibility.md.

Every check imports modules in real isolated interpreters. The command line runs as
a subprocess of the Python running the tests; the logic also runs in-process, where
the autouse fixture checks that no interpreter, thread or pipe leaks.
"""

from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import aiointerp
from aiointerp.__main__ import main
from aiointerp._cli import _check, _info
from aiointerp._host import _checks, _defects, _isolated
from aiointerp._host._defects import KNOWN_DEFECTS, defects_of
from aiointerp._wire import _interp

#: where aiointerp is imported from, also when it is not installed in this Python
SOURCE = Path(aiointerp.__file__).resolve().parent.parent
GENERATOR = Path(__file__).resolve().parents[2] / "scripts" / "compatibility.py"
KEYS = [
    "module",
    "status",
    "extension",
    "error",
    "seconds",
    "fallbacks",
    "submodules",
    "runs",
    "note",
]
REFUSAL = "does not support loading in subinterpreters"

MODULES = {
    "boom_mod.py": "raise ValueError('boom at import')\n",
    "needs_dep_mod.py": "import no_such_dependency_of_aiointerp_tests\n",
    "exits_mod.py": "raise SystemExit(3)\n",
    "chatty_mod.py": (
        "import os\n"
        "print('chatty prints at import')\n"
        "os.write(1, b'chatty writes to fd 1\\n')\n"
    ),
    "fallback_mod.py": (
        "try:\n    import readline\nexcept ImportError:\n    readline = None\n"
    ),
    "wrapped_mod.py": (
        "try:\n"
        "    import readline\n"
        "except ImportError:\n"
        "    raise RuntimeError('this needs a Python with readline') from None\n"
    ),
    "killer_mod.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
}


def _is_extension_file(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return spec is not None and isinstance(
        spec.loader, importlib.machinery.ExtensionFileLoader
    )


needs_readline_extension = pytest.mark.skipif(
    not _is_extension_file("readline"), reason="readline is not an extension file here"
)


@pytest.fixture
def modules_dir(tmp_path: Path) -> Path:
    """A directory of modules that fail, print or fall back when imported."""
    for name, code in MODULES.items():
        (tmp_path / name).write_text(code)
    return tmp_path


def _cli(
    *args: str, path: Sequence[Path] = (), cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    extra = env.get("PYTHONPATH")
    entries = [str(SOURCE), *map(str, path), *([extra] if extra else [])]
    env["PYTHONPATH"] = os.pathsep.join(entries)
    return subprocess.run(
        [sys.executable, "-m", "aiointerp", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=100,  # hang guard
        check=False,
    )


def _json(process: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    items = json.loads(process.stdout)
    assert isinstance(items, list)
    for item in items:
        assert list(item) == KEYS
    return {item["module"]: item for item in items}


# -- the command line


def test_cli_all_load_exit_status_0() -> None:
    process = _cli("check", "json", "decimal", "sqlite3", "ctypes")
    assert process.returncode == 0, process.stderr
    lines = process.stdout.splitlines()
    assert lines[0].split() == ["MODULE", "STATUS", "DETAIL"]
    rows = [line.split() for line in lines[1:]]
    assert [row[:2] for row in rows] == [
        ["json", "loads"],
        ["decimal", "loads"],
        ["sqlite3", "loads"],
        ["ctypes", "loads"],
    ]
    assert all(row[3].startswith("ms") for row in rows)
    # json is a package: its submodules were imported too
    assert "submodules checked" in lines[1]
    assert "refused:" not in process.stdout


@pytest.mark.parametrize("name", ["readline", "_curses"])
def test_cli_refused_names_the_extension(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"this Python has no {name}")
    process = _cli("check", "--json", name)
    assert process.returncode == 1, process.stderr
    result = _json(process)[name]
    assert result["status"] == "refused"
    assert result["extension"] == name
    assert REFUSAL in str(result["error"])
    assert isinstance(result["seconds"], float)


def test_cli_mixed_results_json_shape(modules_dir: Path) -> None:
    modules = [
        "json",
        "boom_mod",
        "readline",
        "no_such_module_of_aiointerp_tests",
        "json.no_such_submodule",
    ]
    process = _cli("check", "--json", *modules, path=[modules_dir])
    assert process.returncode == 1, process.stderr
    results = _json(process)
    assert list(results) == modules  # in the order given
    assert results["json"]["status"] == "loads"
    assert results["json"]["fallbacks"] == []
    seconds = results["json"]["seconds"]
    assert isinstance(seconds, float)
    assert 0 <= seconds < 60
    assert results["boom_mod"]["status"] == "failed"
    assert results["boom_mod"]["error"] == "ValueError: boom at import"
    if importlib.util.find_spec("readline") is not None:
        assert results["readline"]["status"] == "refused"
    for name in modules[3:]:
        assert results[name]["status"] == "not_installed"
        assert results[name]["seconds"] is None


def test_cli_exit_status_1_for_one_failure_among_loads(modules_dir: Path) -> None:
    assert _cli("check", "json", "boom_mod", path=[modules_dir]).returncode == 1
    assert _cli("check", "json", "no_such_module_of_aiointerp_tests").returncode == 1
    assert _cli("check", "json", "fallback_mod", path=[modules_dir]).returncode == 0


def test_cli_human_table_is_aligned(modules_dir: Path) -> None:
    modules = ["json", "boom_mod", "readline", "no_such_module_of_aiointerp_tests"]
    process = _cli("check", *modules, path=[modules_dir])
    assert process.returncode == 1
    lines = process.stdout.splitlines()
    table = lines[: len(modules) + 1]
    assert [line.split()[0] for line in table] == ["MODULE", *modules]
    status_column = table[0].index("STATUS")
    detail_column = table[0].index("DETAIL")
    for line, status in zip(
        table[1:], ["loads", "failed", "refused", "not installed"], strict=True
    ):
        assert line[status_column:].startswith(status)
        assert line[status_column - 2 : status_column] == "  "
    assert table[2][detail_column:] == "ValueError: boom at import"
    if importlib.util.find_spec("readline") is not None:
        assert table[3][detail_column:] == "by readline"
        hint = " ".join(lines[len(modules) + 2 :])
        assert 'InterpreterPool(kind="process")' in hint


def test_cli_module_output_does_not_break_the_report(modules_dir: Path) -> None:
    process = _cli("check", "--json", "chatty_mod", path=[modules_dir])
    assert process.returncode == 0, process.stderr
    assert _json(process)["chatty_mod"]["status"] == "loads"
    assert "chatty prints at import" in process.stderr
    assert "chatty writes to fd 1" in process.stderr


def test_cli_uses_the_callers_sys_path(modules_dir: Path) -> None:
    # `python -m` puts the working directory first on sys.path, as for the app
    process = _cli("check", "--json", "boom_mod", cwd=modules_dir)
    assert _json(process)["boom_mod"]["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "required: COMMAND"),
        (["check"], "the following arguments are required: MODULE"),
        (
            ["check", "json", "foo-bar"],
            "not a module name or module:function: 'foo-bar'",
        ),
        (["check", ".relative"], "not a module name or module:function: '.relative'"),
        (["check", "json:"], "not a module name or module:function: 'json:'"),
        (["check", "a:b:c"], "not a module name or module:function: 'a:b:c'"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_cli_usage_errors_exit_2(args: list[str], message: str) -> None:
    process = _cli(*args)
    assert process.returncode == 2
    assert message in process.stderr
    assert process.stdout == ""


def test_main_in_process(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", "json"]) == 0
    out = capfd.readouterr().out
    assert [item["status"] for item in json.loads(out)] == ["loads"]


# -- the logic, in-process


@pytest.mark.parametrize(
    ("module", "error"),
    [
        ("boom_mod", "ValueError: boom at import"),
        (
            "needs_dep_mod",
            "ModuleNotFoundError: No module named "
            "'no_such_dependency_of_aiointerp_tests'",
        ),
        ("exits_mod", "SystemExit: 3"),
    ],
)
def test_other_errors_are_failed(
    modules_dir: Path, monkeypatch: pytest.MonkeyPatch, module: str, error: str
) -> None:
    monkeypatch.syspath_prepend(str(modules_dir))
    [result] = _check.check([module])
    assert result == _checks.CheckResult(module, "failed", None, error, result.seconds)
    assert result.seconds is not None


@needs_readline_extension
def test_refusal_found_through_the_exception_chain(
    modules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # numpy and pandas re-raise the refusal as their own ImportError; this module
    # hides it with `from None`
    monkeypatch.syspath_prepend(str(modules_dir))
    [result] = _check.check(["wrapped_mod"])
    assert result.status == "refused"
    assert result.extension == "readline"
    assert result.error is not None
    assert REFUSAL in result.error


@needs_readline_extension
def test_loads_with_a_refused_extension_reports_the_fallback(
    modules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(modules_dir))
    [result, plain] = _check.check(["fallback_mod", "json"])
    assert result.status == "loads"
    assert result.fallbacks == ("readline",)
    assert plain.fallbacks == ()
    assert "loaded without readline (refused)" in _check.format_results([result])


def test_refusing_extension_is_named_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3.13's message names the extension by its short name (`_curses`): the check
    # reports the module that was being loaded, `copied._curses`
    if not _is_extension_file("_curses"):
        pytest.skip("_curses is not an extension file here")
    spec = importlib.util.find_spec("_curses")
    assert spec is not None
    assert spec.origin is not None
    package = tmp_path / "copied"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(spec.origin, package / os.path.basename(spec.origin))
    monkeypatch.syspath_prepend(str(tmp_path))
    [result] = _check.check(["copied._curses"])
    assert result.status == "refused"
    assert result.extension == "copied._curses"


def test_not_installed_is_decided_before_any_interpreter() -> None:
    result = _checks.check_module("no_such_module_of_aiointerp_tests")
    assert result == _checks.CheckResult(
        "no_such_module_of_aiointerp_tests",
        "not_installed",
        error="not found on sys.path",
    )


def test_a_missing_dependency_is_not_not_installed(
    modules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(modules_dir))
    results = _check.check(["needs_dep_mod", "json.no_such_submodule"])
    assert [r.status for r in results] == ["failed", "not_installed"]


def test_bad_names_are_rejected_before_any_import() -> None:
    with pytest.raises(ValueError, match="not a module name: 'a b'"):
        _check.check(["no_such_module_of_aiointerp_tests", "a b"])
    with pytest.raises(ValueError, match="not a module name: ''"):
        _checks.check_module("")
    assert _checks.is_module_name("a.b_c.d1")
    assert not _checks.is_module_name("a..b")
    assert not _checks.is_module_name("1a")


def test_each_module_gets_a_fresh_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "marker_a_mod.py").write_text(
        "import sys\nsys.modules['aiointerp_tests_marker'] = sys.modules[__name__]\n"
    )
    (tmp_path / "marker_b_mod.py").write_text(
        "import sys\n"
        "if 'aiointerp_tests_marker' in sys.modules:\n"
        "    raise RuntimeError('an interpreter was reused')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    results = _check.check(["marker_a_mod", "marker_b_mod"])
    assert [r.status for r in results] == ["loads", "loads"]
    # nothing was imported by the host
    assert {"marker_a_mod", "marker_b_mod", "aiointerp_tests_marker"}.isdisjoint(
        sys.modules
    )


@needs_readline_extension
def test_check_import_follows_the_from_list_as_the_statement_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what kind="auto" probes before a first call: `from pkg import a, b, c`
    package = tmp_path / "fromlist_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("attr = 1\n")
    (package / "plain.py").write_text("")
    (package / "refusing.py").write_text("import readline\n")
    (package / "after.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    results = _checks.check_import(
        "fromlist_pkg", ("attr", "plain", "missing", "refusing", "after")
    )
    assert [(r.module, r.status) for r in results] == [
        ("fromlist_pkg", "loads"),
        ("fromlist_pkg.attr", "loads"),
        ("fromlist_pkg.plain", "loads"),
        ("fromlist_pkg.missing", "not_installed"),
        ("fromlist_pkg.refusing", "refused"),
    ]  # the items after a refused one are not imported
    assert results[1].note == "attr is an attribute of fromlist_pkg"
    assert results[4].extension == "readline"
    [plain] = _checks.check_import("json", ())
    assert (plain.module, plain.status, plain.note) == ("json", "loads", None)
    [absent] = _checks.check_import("no_such_module_of_aiointerp_tests", ("x",))
    assert absent.status == "not_installed"
    with pytest.raises(ValueError, match="not an import"):
        _checks.check_import("json", ("a b",))


def test_a_broken_check_is_a_runtime_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # bookkeeping: what the caller sees when the code sent into the interpreter fails
    monkeypatch.setattr(_isolated, "_PROBE", "raise OSError('probe broke')\n")
    with pytest.raises(RuntimeError, match="could not check 'json'") as info:
        _check.check(["json"])
    assert "OSError: probe broke" in str(info.value)


def test_import_aiointerp_does_not_load_the_cli() -> None:
    code = (
        "import sys, aiointerp\n"
        "loaded = {'aiointerp._cli._check', 'aiointerp._cli._info', 'aiointerp.__main__',\n"
        "          'aiointerp._host._checks', 'aiointerp._host._isolated'}\n"
        "assert not loaded & set(sys.modules), loaded & set(sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SOURCE))
    process = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr


# -- packages: their submodules are checked too


def _write_package(root: Path, name: str, files: dict[str, str]) -> None:
    for relative, code in files.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)


@pytest.fixture
def packages_dir(tmp_path: Path) -> Path:
    """Packages whose submodules refuse, fail, or must not be imported."""
    _write_package(
        tmp_path,
        "aiointerp_pkg",
        {
            "__init__.py": "",
            "plain.py": "",
            "fast.py": "import readline\n",  # imports the extension itself
            "uses_fast.py": "from . import fast\n",  # refused through it
            "broken.py": "raise ValueError('not a refusal')\n",
            "__main__.py": "print('MAIN RAN')\nraise SystemExit(4)\n",
            "tests/__init__.py": "print('TESTS RAN')\n",
            "test_things.py": "print('TESTS RAN')\n",
            "sub/__init__.py": "",
            "sub/deep.py": "import readline\n",
        },
    )
    _write_package(tmp_path, "aiointerp_clean_pkg", {"__init__.py": "", "a.py": ""})
    return tmp_path


@needs_readline_extension
def test_cli_package_with_refused_submodules(packages_dir: Path) -> None:
    process = _cli("check", "--json", "aiointerp_pkg", path=[packages_dir])
    assert process.returncode == 1, process.stderr
    result = _json(process)["aiointerp_pkg"]
    assert result["status"] == "refused"
    assert result["extension"] == "readline"
    assert result["fallbacks"] == []
    submodules = result["submodules"]
    assert isinstance(submodules, dict)
    # fast, sub.deep import readline themselves: listed first; uses_fast after
    assert submodules["refused"] == [
        {"module": "aiointerp_pkg.fast", "extension": "readline"},
        {"module": "aiointerp_pkg.sub.deep", "extension": "readline"},
        {"module": "aiointerp_pkg.uses_fast", "extension": "readline"},
    ]
    # broken, fast, plain, sub, uses_fast, sub.deep; not __main__ nor the tests
    assert (submodules["checked"], submodules["complete"]) == (6, True)
    assert "RAN" not in process.stderr
    assert "3 of its 6 submodules are refused" in str(result["error"])
    table = _cli("check", "aiointerp_pkg", path=[packages_dir])
    assert table.returncode == 1
    row = table.stdout.splitlines()[1]
    assert row.split()[:3] == ["aiointerp_pkg", "refused", "by"]
    assert row.endswith(
        "by readline: 3 of its 6 submodules are refused: aiointerp_pkg.fast, "
        "aiointerp_pkg.sub.deep, aiointerp_pkg.uses_fast"
    )


def test_cli_package_whose_submodules_load(packages_dir: Path) -> None:
    process = _cli("check", "--json", "aiointerp_clean_pkg", path=[packages_dir])
    assert process.returncode == 0, process.stderr
    result = _json(process)["aiointerp_clean_pkg"]
    assert result["status"] == "loads"
    assert result["submodules"] == {"checked": 1, "complete": True, "refused": []}


@needs_readline_extension
def test_cli_no_submodules(packages_dir: Path) -> None:
    process = _cli(
        "check", "--json", "--no-submodules", "aiointerp_pkg", path=[packages_dir]
    )
    assert process.returncode == 0, process.stderr
    result = _json(process)["aiointerp_pkg"]
    assert (result["status"], result["submodules"]) == ("loads", None)


def test_cli_pillow_is_refused_by_name() -> None:
    # `import PIL` loads: everything useful is in PIL.Image, which needs PIL._imaging
    pytest.importorskip("PIL")  # in requirements-dev.txt: installed in CI
    process = _cli("check", "--json", "PIL")
    assert process.returncode == 1, process.stderr
    result = _json(process)["PIL"]
    assert result["status"] == "refused"
    assert result["extension"] == "PIL._imaging"
    submodules = result["submodules"]
    assert isinstance(submodules, dict)
    refused = [item["module"] for item in submodules["refused"]]
    assert refused[0] == "PIL.Image"
    assert {"PIL.Image", "PIL._imaging", "PIL.PngImagePlugin"} <= set(refused)
    table = _cli("check", "PIL")
    assert "by PIL._imaging" in table.stdout
    assert "PIL.Image, " in table.stdout


@needs_readline_extension
def test_a_fallen_back_extension_does_not_refuse_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyYAML's way: `import yaml` goes on without yaml._yaml; the submodules that
    # need it are listed, the package is not refused for them
    spec = importlib.util.find_spec("readline")
    assert spec is not None
    assert spec.origin is not None
    _write_package(
        tmp_path,
        "aiointerp_fb_pkg",
        {
            "__init__.py": (
                "try:\n    from . import readline\nexcept ImportError:\n"
                "    readline = None\n"
            ),
            "uses.py": "import aiointerp_fb_pkg.readline\n",
        },
    )
    shutil.copy(spec.origin, tmp_path / "aiointerp_fb_pkg" / Path(spec.origin).name)
    monkeypatch.syspath_prepend(str(tmp_path))
    [result] = _check.check(["aiointerp_fb_pkg"])
    assert result.status == "loads"
    assert result.fallbacks == ("aiointerp_fb_pkg.readline",)
    assert result.submodules is not None
    assert [name for name, _ in result.submodules.refused] == [
        "aiointerp_fb_pkg.readline",
        "aiointerp_fb_pkg.uses",
    ]
    assert result.ok
    detail = _check.format_results([result])
    assert "aiointerp_fb_pkg.readline, aiointerp_fb_pkg.uses need what it" in detail


@pytest.mark.parametrize(("limit", "seconds"), [(2, 60.0), (100, 0.0)])
def test_the_walk_is_bounded(
    packages_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    limit: int,
    seconds: float,
) -> None:
    monkeypatch.syspath_prepend(str(packages_dir))
    monkeypatch.setattr(_checks, "SUBMODULE_LIMIT", limit)
    monkeypatch.setattr(_checks, "SUBMODULE_SECONDS", seconds)
    [result] = _check.check(["aiointerp_clean_pkg"])
    assert result.submodules is not None
    if seconds:  # one submodule: within the count
        assert (result.submodules.checked, result.submodules.complete) == (1, True)
    else:  # no time left for any
        assert (result.submodules.checked, result.submodules.complete) == (0, False)
        assert "the walk stopped there" in _check.format_results([result])


# -- functions: module:function


FUNCTIONS = {
    "aiointerp_cpu_mod.py": (
        "import hashlib\n"
        "def hash_pw(pw):\n    return hashlib.sha256(pw).hexdigest()\n"
        "class Hasher:\n    @staticmethod\n    def run(x):\n        return x\n"
        "square = lambda x: x * x\n"
        "VALUE = 3\n"
        "async def later():\n    pass\n"
    ),
    "aiointerp_app_mod.py": (
        "import readline\n"
        "print('the app module prints at import')\n"
        "def helper(x):\n    return 2 * x\n"
        "def work(x):\n    return helper(x) + 1\n"
        "def history():\n    return readline.get_history_length()\n"
        "def pid_here():\n    import os\n    return os.getpid()\n"
        "def pid_with_readline():\n    import os\n"
        "    readline.get_history_length()\n    return os.getpid()\n"
    ),
}


@pytest.fixture
def functions_dir(tmp_path: Path) -> Path:
    for name, code in FUNCTIONS.items():
        (tmp_path / name).write_text(code)
    return tmp_path


def test_cli_function_by_reference(functions_dir: Path) -> None:
    targets = [
        "aiointerp_cpu_mod:hash_pw",
        "aiointerp_cpu_mod:Hasher.run",
        "json:dumps",
    ]
    process = _cli("check", "--json", *targets, path=[functions_dir])
    assert process.returncode == 0, process.stderr
    results = _json(process)
    assert list(results) == targets
    for target in targets:
        assert (results[target]["status"], results[target]["runs"]) == (
            "loads",
            "reference",
        )
    table = _cli("check", targets[0], path=[functions_dir])
    assert table.returncode == 0
    row = table.stdout.splitlines()[1]
    assert row.startswith(
        "aiointerp_cpu_mod:hash_pw  by reference  runs in an interpreter"
    )


@needs_readline_extension
def test_cli_function_by_value_and_in_a_process(functions_dir: Path) -> None:
    pytest.importorskip("cloudpickle")
    work, history = "aiointerp_app_mod:work", "aiointerp_app_mod:history"
    process = _cli("check", "--json", work, path=[functions_dir])
    # its module is refused, but its code (and helper's) loads sent by value
    assert process.returncode == 0, process.stderr
    result = _json(process)[work]
    assert (result["status"], result["extension"], result["runs"]) == (
        "refused",
        "readline",
        "value",
    )
    assert "sent by value (cloudpickle), its code loads" in str(result["note"])
    # the host imported the module to pickle the function: its print went to stderr
    assert "the app module prints at import" in process.stderr
    # the function uses readline: sent by value, loading it imports readline
    process = _cli("check", "--json", history, path=[functions_dir])
    assert process.returncode == 1, process.stderr
    result = _json(process)[history]
    assert (result["status"], result["runs"]) == ("refused", "process")
    assert "its code is refused too (by readline)" in str(result["note"])
    table = _cli("check", work, history, path=[functions_dir])
    assert table.returncode == 1
    rows = [line.split("  ")[0:2] for line in table.stdout.splitlines()[1:3]]
    assert [row[0] for row in rows] == [work, history]
    assert 'InterpreterPool(kind="process")' in table.stdout


@needs_readline_extension
@pytest.mark.anyio
async def test_the_verdicts_are_what_a_pool_does(
    functions_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cloudpickle")
    monkeypatch.syspath_prepend(str(functions_dir))
    here, there = "aiointerp_app_mod:pid_here", "aiointerp_app_mod:pid_with_readline"
    verdicts = await anyio.to_thread.run_sync(_check.check, [here, there])
    assert [r.runs for r in verdicts] == ["value", "process"]
    import aiointerp_app_mod  # type: ignore[import-not-found]

    try:
        async with aiointerp.InterpreterPool(2, kind="auto") as pool:
            # "value": in an interpreter of this process; "process": in a child
            assert await pool.run_sync(aiointerp_app_mod.pid_here) == os.getpid()
            assert await pool.run_sync(aiointerp_app_mod.pid_with_readline) != (
                os.getpid()
            )
    finally:
        sys.modules.pop("aiointerp_app_mod", None)


def test_cli_function_that_cannot_be_pickled_by_reference(functions_dir: Path) -> None:
    pytest.importorskip("cloudpickle")
    process = _cli("check", "--json", "aiointerp_cpu_mod:square", path=[functions_dir])
    assert process.returncode == 0, process.stderr
    result = _json(process)["aiointerp_cpu_mod:square"]
    assert (result["status"], result["runs"]) == ("loads", "value")
    assert "cannot be pickled by reference" in str(result["note"])


@pytest.mark.parametrize(
    ("target", "status", "error"),
    [
        (
            "aiointerp_cpu_mod:nope",
            "failed",
            "AttributeError: module 'aiointerp_cpu_mod' has no attribute 'nope'",
        ),
        (
            "aiointerp_cpu_mod:VALUE",
            "failed",
            "aiointerp_cpu_mod:VALUE cannot be called (a int)",
        ),
        (
            "aiointerp_cpu_mod:later",
            "failed",
            "aiointerp_cpu_mod:later is async: pools run synchronous functions",
        ),
        ("aiointerp_no_such_mod:f", "not_installed", "not found on sys.path"),
    ],
)
def test_cli_functions_that_cannot_run(
    functions_dir: Path, target: str, status: str, error: str
) -> None:
    process = _cli("check", "--json", target, "json:loads", path=[functions_dir])
    assert process.returncode == 1, process.stderr
    result = _json(process)[target]
    assert (result["status"], result["error"], result["runs"]) == (status, error, None)


@needs_readline_extension
def test_functions_without_cloudpickle(
    functions_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(functions_dir))
    monkeypatch.setitem(sys.modules, "cloudpickle", None)
    work, square = _check.check(["aiointerp_app_mod:work", "aiointerp_cpu_mod:square"])
    assert (work.status, work.runs) == ("refused", "process")
    assert work.note is not None
    assert "pip install cloudpickle" in work.note
    assert not work.ok
    assert (square.status, square.runs) == ("failed", None)
    assert square.note is not None
    assert "install cloudpickle (pip install cloudpickle) to send it by value" in (
        square.note
    )
    assert not square.ok
    assert "aiointerp_app_mod" not in sys.modules  # the host did not import it


@needs_readline_extension
def test_by_value_leaves_cloudpickle_as_it_was(
    functions_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloudpickle = pytest.importorskip("cloudpickle")
    monkeypatch.syspath_prepend(str(functions_dir))
    before = set(cloudpickle.list_registry_pickle_by_value())
    try:
        [result] = _check.check(["aiointerp_app_mod:work"])
    finally:
        sys.modules.pop("aiointerp_app_mod", None)
    assert result.runs == "value"
    assert set(cloudpickle.list_registry_pickle_by_value()) == before


def test_is_target() -> None:
    assert _checks.is_target("pkg.mod")
    assert _checks.is_target("pkg.mod:func")
    assert _checks.is_target("pkg.mod:Class.method")
    for bad in ("pkg.mod:", ":func", "a:b:c", "pkg mod:f", "pkg:1f"):
        assert not _checks.is_target(bad), bad
    with pytest.raises(ValueError, match="not module:function: 'json'"):
        _checks.check_function("json")


# -- info

#: the defect that aborts the process on 3.13.0 (``sys._current_frames()``)
CRASH = next(d for d in KNOWN_DEFECTS if "_current_frames" in d.summary)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_cli_info() -> None:
    process = _cli("info")
    assert process.returncode == 0, process.stderr
    out = process.stdout
    fields = dict(line.split(None, 1) for line in out.splitlines()[:8])
    assert fields["Python"] == sys.version.replace("\n", " ")
    assert fields["implementation"].startswith("cpython, ")
    assert fields["subinterpreters"].startswith("available: ")
    assert fields["pools"] == "supported"
    assert fields["CPUs"].startswith(f"{os.cpu_count()} ")
    assert str(SOURCE / "aiointerp") in fields["aiointerp"]
    assert fields["anyio"] != "not installed"
    on_3130 = sys.version_info[:3] == (3, 13, 0)
    assert CRASH.first == CRASH.last == (3, 13, 0)
    assert (_flat(CRASH.summary) in _flat(out)) == on_3130
    assert ("sys._current_frames()" in out) == on_3130
    for defect in defects_of():
        assert _flat(defect.summary) in _flat(out)
        assert f"see {defect.reference}" in out
    if not defects_of():
        assert f"none known for {platform.python_version()}" in out


def test_cli_info_json() -> None:
    process = _cli("info", "--json")
    assert process.returncode == 0, process.stderr
    data = json.loads(process.stdout)
    assert list(data) == [
        "python",
        "implementation",
        "build",
        "platform",
        "subinterpreters",
        "subinterpreters_detail",
        "refused",
        "cpu_count",
        "process_cpu_count",
        "aiointerp",
        "aiointerp_path",
        "anyio",
        "defects",
    ]
    assert data["subinterpreters"] is True
    assert data["refused"] is None
    assert data["cpu_count"] == os.cpu_count()
    assert data["python"] == sys.version
    assert [d["summary"] for d in data["defects"]] == [d.summary for d in defects_of()]
    for defect in data["defects"]:
        assert list(defect) == ["versions", "summary", "impact", "reference"]
    if sys.version_info[:3] == (3, 13, 0):
        assert data["defects"][0]["versions"] == "3.13.0"


def test_info_in_process() -> None:
    description = _info.info()
    assert description.subinterpreters
    assert description.defects == tuple(defects_of())
    text = _info.format_info(description)
    if description.defects:
        assert "known CPython defects that affect" in text
    else:
        assert "none known for" in text


def test_info_without_subinterpreters(monkeypatch: pytest.MonkeyPatch) -> None:
    # bookkeeping: the report of a Python that cannot create interpreters
    def refuse() -> None:
        raise RuntimeError("no interpreters today")

    monkeypatch.setattr(_interp, "create", refuse)
    description = _info.info()
    assert not description.subinterpreters
    assert "RuntimeError: no interpreters today" in description.subinterpreters_detail
    assert "subinterpreters  unavailable: could not create one" in _info.format_info(
        description
    )


def _free_threaded(monkeypatch: pytest.MonkeyPatch, gil_enabled: bool) -> None:
    """Make this Python look free-threaded (these machines have no such build)."""
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: gil_enabled)
    monkeypatch.setattr(sys, "abiflags", "t")


@pytest.mark.parametrize("gil_enabled", [False, True], ids=["gil-off", "gil-on"])
def test_free_threaded_build_is_refused(
    monkeypatch: pytest.MonkeyPatch, gil_enabled: bool
) -> None:
    assert _defects.free_threaded_refusal() is None
    _defects.refuse_free_threaded()  # this build: nothing raised
    _free_threaded(monkeypatch, gil_enabled)
    with pytest.raises(RuntimeError) as info:
        _defects.refuse_free_threaded()
    message = str(info.value)
    assert message.startswith("aiointerp does not run on free-threaded CPython builds")
    assert ("GIL disabled" in message) != gil_enabled
    assert "relies on the GIL" in message  # why
    assert "Use a default (GIL) build of CPython" in message  # what to do


@pytest.mark.parametrize("gil_disabled", [None, 0, 1], ids=["unset", "off", "on"])
def test_free_threaded_build_told_without_abiflags(
    monkeypatch: pytest.MonkeyPatch, gil_disabled: int | None
) -> None:
    # Windows has no sys.abiflags: the build's Py_GIL_DISABLED tells it instead
    monkeypatch.delattr(sys, "abiflags", raising=False)
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True)
    seen: list[str] = []

    def config_var(name: str) -> int | None:
        seen.append(name)
        return gil_disabled

    monkeypatch.setattr(sysconfig, "get_config_var", config_var)
    refusal = _defects.free_threaded_refusal()
    assert seen == ["Py_GIL_DISABLED"]
    if gil_disabled:
        assert refusal is not None
        assert "its GIL enabled for now" in refusal
    else:
        assert refusal is None


def test_free_threaded_gil_off_is_refused_whatever_the_build_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False)
    with pytest.raises(RuntimeError, match="GIL disabled"):
        _defects.refuse_free_threaded()


def test_info_shows_the_free_threaded_refusal(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    _free_threaded(monkeypatch, gil_enabled=False)
    description = _info.info()
    assert description.refused == _defects.free_threaded_refusal()
    assert main(["info"]) == 0
    out = capfd.readouterr().out
    assert "pools            refused: aiointerp does not run on free-threaded" in out
    assert "Use a default (GIL) build of CPython" in _flat(out)
    assert main(["info", "--json"]) == 0
    data = json.loads(capfd.readouterr().out)
    assert data["refused"] == _defects.free_threaded_refusal()


def test_pool_refuses_a_free_threaded_build(monkeypatch: pytest.MonkeyPatch) -> None:
    _free_threaded(monkeypatch, gil_enabled=False)
    with pytest.raises(RuntimeError, match="free-threaded"):
        aiointerp.InterpreterPool(1)


# -- the generator of docs/compatibility.md


def _generate(*args: str, path: Sequence[Path] = ()) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SOURCE), *map(str, path)])
    process = subprocess.run(
        [sys.executable, str(GENERATOR), "--python", sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=110,  # hang guard
        check=False,
    )
    assert process.returncode == 0, process.stderr
    return process.stderr


def _rows(page: str) -> dict[str, list[str]]:
    rows = {}
    for line in page.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.skipif(not GENERATOR.exists(), reason="tests run outside the checkout")
def test_generator_without_installing(tmp_path: Path) -> None:
    output = tmp_path / "compatibility.md"
    _generate(
        "--no-install",
        "--only",
        "json",
        "readline",
        "no_such_module_of_aiointerp_tests",
        "--output",
        str(output),
    )
    page = output.read_text()
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert f"Generated on {today}" in page
    column = f"CPython {platform.python_version()}"
    assert f"| Module | {column} | Refused extension modules |" in page
    rows = _rows(page)
    assert rows["`json`"] == ["loads", ""]
    assert rows["`no_such_module_of_aiointerp_tests`"] == ["not installed", ""]
    if importlib.util.find_spec("readline") is not None:
        assert rows["`readline`"] == ["**refused**", "`readline`"]
    assert "## Standard library" in page
    assert "## Other modules" in page
    assert "## Third-party packages" not in page
    assert "$ python -m aiointerp check json no_such_module" in page
    assert "## Regenerate this page" in page


@pytest.mark.skipif(not GENERATOR.exists(), reason="tests run outside the checkout")
def test_generator_in_a_fresh_venv(tmp_path: Path) -> None:
    # standard library modules only: the venv is made, pip has nothing to install
    output = tmp_path / "compatibility.md"
    _generate(
        "--venv-root",
        str(tmp_path / "venvs"),
        "--only",
        "json",
        "--output",
        str(output),
    )
    venv = tmp_path / "venvs" / platform.python_version()
    assert (venv / "pyvenv.cfg").exists()
    assert _rows(output.read_text())["`json`"] == ["loads", ""]


@pytest.mark.skipif(not GENERATOR.exists(), reason="tests run outside the checkout")
def test_generator_survives_a_module_that_kills_the_process(
    modules_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "compatibility.md"
    log = _generate(
        "--no-install",
        "--only",
        "json",
        "killer_mod",
        "--output",
        str(output),
        path=[modules_dir],
    )
    assert "one process per module" in log
    rows = _rows(output.read_text())
    assert rows["`json`"] == ["loads", ""]
    assert rows["`killer_mod`"][0].startswith("**crashed**: killed by SIGKILL")
