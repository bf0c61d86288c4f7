"""Regenerate docs/compatibility.md: which popular packages load in an isolated interpreter.

    python scripts/compatibility.py --python python3.13 --python python3.14

For each ``--python``, this script makes a throwaway virtual environment (without pip:
the pip of the Python running this script installs into it with ``pip --python``),
installs the PACKAGES below from wheels only (``--only-binary :all:``, the newest
release that has a wheel for that Python), runs ``python -m aiointerp check --json``
on their modules and on the STDLIB modules with this checkout's ``src/`` on
``PYTHONPATH``, and writes the page. Nothing is typed by hand: edit the lists below
and run it again.

Options:

* ``--venv-root DIR``: keep the environments in ``DIR/<version>`` and reuse them
  (pip then installs only what is new); by default they go to a temporary directory
  removed at the end;
* ``--no-install``: check each ``--python`` as it is, with whatever it has installed;
* ``--only MODULE ...``: check only these modules (the tests use it, with standard
  library modules, to run the script without network access);
* ``--output PATH`` (default ``docs/compatibility.md``).

An import that crashes the process cannot be contained by an interpreter: when the
checking process dies, the modules are checked again one process each, and the one
that kills its process is reported as ``crashed``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
DEFAULT_OUTPUT = ROOT / "docs" / "compatibility.md"
#: Hang guards: a whole run of ``check``, and one module checked on its own.
BATCH_TIMEOUT = 900
MODULE_TIMEOUT = 180


@dataclass(frozen=True)
class Package:
    """A distribution on PyPI and the modules its users import."""

    requirement: str
    modules: tuple[str, ...]


PACKAGES: tuple[Package, ...] = (
    # numbers and data
    Package("numpy", ("numpy",)),
    Package("pandas", ("pandas",)),
    Package("scipy", ("scipy", "scipy.linalg")),
    Package("pyarrow", ("pyarrow",)),
    # validation and serialisation
    Package("pydantic", ("pydantic", "pydantic_core")),
    Package("attrs", ("attrs",)),
    Package("orjson", ("orjson",)),
    Package("ujson", ("ujson",)),
    Package("simplejson", ("simplejson",)),
    Package("msgspec", ("msgspec",)),
    Package("msgpack", ("msgpack",)),
    Package("PyYAML", ("yaml", "yaml._yaml")),
    Package("lxml", ("lxml", "lxml.etree")),
    Package("protobuf", ("google.protobuf.json_format", "google._upb._message")),
    Package("cloudpickle", ("cloudpickle",)),
    # compression and hashing
    Package("zstandard", ("zstandard",)),
    Package("brotli", ("brotli",)),
    Package("lz4", ("lz4.frame",)),
    Package("xxhash", ("xxhash",)),
    # text and templates
    Package("markupsafe", ("markupsafe", "markupsafe._speedups")),
    Package("jinja2", ("jinja2",)),
    Package("regex", ("regex",)),
    Package("charset-normalizer", ("charset_normalizer",)),
    Package("tiktoken", ("tiktoken",)),
    Package("rich", ("rich",)),
    # security
    Package("cryptography", ("cryptography", "cryptography.fernet")),
    Package("bcrypt", ("bcrypt",)),
    Package("cffi", ("cffi", "_cffi_backend")),
    # system
    Package("psutil", ("psutil",)),
    # HTTP, networking, async
    Package("requests", ("requests",)),
    Package("httpx", ("httpx",)),
    Package("aiohttp", ("aiohttp",)),
    Package("multidict", ("multidict",)),
    Package("yarl", ("yarl",)),
    Package("frozenlist", ("frozenlist",)),
    Package("tornado", ("tornado.web", "tornado.speedups")),
    Package("pyzmq", ("zmq",)),
    Package("uvloop", ("uvloop",)),
    Package("anyio", ("anyio",)),
    Package("trio", ("trio",)),
    Package("greenlet", ("greenlet",)),
    # databases
    Package("SQLAlchemy", ("sqlalchemy",)),
    Package("asyncpg", ("asyncpg",)),
    Package("pymongo", ("pymongo",)),
    # images, schemas
    Package("pillow", ("PIL.Image",)),
    Package("jsonschema", ("jsonschema",)),
)

STDLIB: tuple[str, ...] = (
    "asyncio",
    "json",
    "pickle",
    "re",
    "datetime",
    "zoneinfo",
    "decimal",
    "_decimal",
    "array",
    "mmap",
    "unicodedata",
    "csv",
    "xml.etree.ElementTree",
    "pyexpat",
    "sqlite3",
    "dbm",
    "ctypes",
    "ssl",
    "hashlib",
    "zlib",
    "bz2",
    "lzma",
    "socket",
    "select",
    "multiprocessing",
    "concurrent.futures",
    "subprocess",
    "readline",
    "curses",
    "_curses",
    "tkinter",
    "_tkinter",
)


@dataclass
class Run:
    """The results of one Python."""

    python: str  # the executable given
    version: str = ""  # e.g. "3.13.18"
    versions: dict[str, str | None] = field(
        default_factory=dict
    )  # requirement -> version
    no_wheel: set[str] = field(default_factory=set)  # requirements that did not install
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # module -> result
    sample: str = ""  # human output of a small check, for the page


def _run(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *([path] if path else [])])
    return env


def _python_version(python: str) -> str:
    process = _run([python, "-c", "import platform; print(platform.python_version())"])
    if process.returncode:
        sys.exit(f"cannot run {python}: {process.stderr.strip()}")
    return process.stdout.strip()


def _make_venv(python: str, where: Path) -> str:
    venv_python = where / "bin" / "python"
    if not venv_python.exists():
        print(f"== creating {where}", file=sys.stderr)
        process = _run([python, "-m", "venv", "--without-pip", str(where)])
        if process.returncode:
            sys.exit(f"cannot create a venv with {python}: {process.stderr.strip()}")
    return str(venv_python)


#: What pip says when a package has no wheel for that Python (any other failure stops).
_NO_WHEEL = (
    "No matching distribution found",
    "Could not find a version that satisfies",
)


def _pip_install(venv_python: str, requirements: Sequence[str]) -> set[str]:
    """Install *requirements* (wheels only); return those that could not be."""
    if not requirements:
        return set()
    pip = [sys.executable, "-m", "pip", "--python", venv_python, "install", "-q"]
    pip += ["--disable-pip-version-check", "--only-binary", ":all:"]
    print(
        f"== pip install into {venv_python} ({len(requirements)} packages)",
        file=sys.stderr,
    )
    if _run([*pip, *requirements]).returncode == 0:
        return set()
    failed = set()  # one at a time, to tell which has no wheel for this Python
    for requirement in requirements:
        process = _run([*pip, requirement])
        if process.returncode == 0:
            continue
        if not any(sign in process.stderr for sign in _NO_WHEEL):
            tail = "\n".join(process.stderr.strip().splitlines()[-5:])
            sys.exit(f"pip could not install {requirement} into {venv_python}:\n{tail}")
        print(f"   {requirement}: no wheel for this Python", file=sys.stderr)
        failed.add(requirement)
    return failed


def _versions(python: str, requirements: Iterable[str]) -> dict[str, str | None]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def v(name):\n"
        "    try:\n"
        "        return m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps({name: v(name) for name in sys.argv[1:]}))\n"
    )
    process = _run([python, "-c", code, *requirements])
    if process.returncode:
        sys.exit(f"cannot list versions with {python}: {process.stderr.strip()}")
    versions: dict[str, str | None] = json.loads(process.stdout)
    return versions


def _death(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _check(python: str, modules: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Run ``python -m aiointerp check --json`` on *modules*; survive crashes."""
    cmd = [python, "-m", "aiointerp", "check", "--json"]
    try:
        process = _run([*cmd, *modules], env=_env(), timeout=BATCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        process = None
    if process is not None and process.returncode in (0, 1):
        return {item["module"]: item for item in json.loads(process.stdout)}
    print("== the check did not finish: one process per module", file=sys.stderr)
    results: dict[str, dict[str, Any]] = {}
    for module in modules:
        try:
            one = _run([*cmd, module], env=_env(), timeout=MODULE_TIMEOUT)
        except subprocess.TimeoutExpired:
            results[module] = _special(
                module, "hangs", f"no result in {MODULE_TIMEOUT} s"
            )
            continue
        if one.returncode in (0, 1):
            results[module] = json.loads(one.stdout)[0]
        else:
            last = one.stderr.strip().splitlines()[-1:] or [""]
            why = f"{_death(one.returncode)}: {last[0]}".rstrip(": ")
            results[module] = _special(module, "crashed", why)
    return results


def _special(module: str, status: str, error: str) -> dict[str, Any]:
    return {
        "module": module,
        "status": status,
        "extension": None,
        "error": error,
        "seconds": None,
        "fallbacks": [],
    }


def _selection(
    only: Sequence[str] | None,
) -> tuple[list[Package], list[str], list[str]]:
    """The packages, stdlib modules and other modules to check."""
    if not only:
        return list(PACKAGES), list(STDLIB), []
    wanted = set(only)
    packages = []
    for package in PACKAGES:
        modules = tuple(m for m in package.modules if m in wanted)
        if modules:
            packages.append(Package(package.requirement, modules))
    known = {m for p in PACKAGES for m in p.modules} | set(STDLIB)
    stdlib = [m for m in STDLIB if m in wanted]
    others = [m for m in only if m not in known]
    return packages, stdlib, others


def collect(
    pythons: Sequence[str],
    only: Sequence[str] | None,
    *,
    install: bool,
    venv_root: Path | None,
) -> tuple[list[Package], list[str], list[str], list[Run]]:
    """Install and check every selected module on every Python."""
    packages, stdlib, others = _selection(only)
    modules = [m for p in packages for m in p.modules] + stdlib + others
    requirements = [p.requirement for p in packages]
    runs = []
    with tempfile.TemporaryDirectory(prefix="aiointerp-compat-") as tmp:
        root = venv_root or Path(tmp)
        for given in pythons:
            run = Run(python=given, version=_python_version(given))
            python = given
            if install:
                python = _make_venv(given, root / run.version)
                run.no_wheel = _pip_install(python, requirements)
            run.versions = _versions(python, requirements)
            print(
                f"== checking {len(modules)} modules on {run.version}", file=sys.stderr
            )
            run.results = _check(python, modules)
            for package in packages:
                if package.requirement in run.no_wheel:
                    for module in package.modules:
                        run.results[module] = _special(module, "no_wheel", "")
            sample = _run(
                [
                    python,
                    "-m",
                    "aiointerp",
                    "check",
                    *_sample_modules(packages, stdlib),
                ],
                env=_env(),
                timeout=MODULE_TIMEOUT,
            )
            run.sample = sample.stdout.rstrip()
            runs.append(run)
    return packages, stdlib, others, runs


def _sample_modules(packages: Sequence[Package], stdlib: Sequence[str]) -> list[str]:
    """A few modules for the example output: what is selected, within reason."""
    preferred = ["json", "yaml", "numpy", "lxml.etree"]
    selected = {m for p in packages for m in p.modules} | set(stdlib)
    chosen = [m for m in preferred if m in selected] or list(selected)[:3]
    return [*chosen, "no_such_module"]


# -- the page


def _code(text: str) -> str:
    return f"`{text}`"


def _cell(result: dict[str, Any] | None) -> str:
    if result is None:  # pragma: no cover - every module checked has a result
        return "?"
    status = result["status"]
    if status == "loads":
        return "loads (fallback)" if result.get("fallbacks") else "loads"
    if status == "refused":
        return "**refused**"
    if status == "not_installed":
        return "not installed"
    if status == "no_wheel":
        return "no wheel"
    error = (result.get("error") or "").strip().splitlines()[:1] or [""]
    text = error[0] if len(error[0]) <= 70 else error[0][:67] + "..."
    text = text.replace("|", "\\|")
    if status == "failed":
        return f"failed: {_code(text)}"
    return f"**{status}**: {text}"


def _refused(result: dict[str, Any] | None) -> tuple[str, ...]:
    """The extension modules that refused during the import of one module."""
    if result is None:  # pragma: no cover
        return ()
    if result["status"] == "refused":
        return (result["extension"] or "?",)
    return tuple(result.get("fallbacks") or ())


def _notes(module: str, runs: Sequence[Run]) -> str:
    """The refused extension modules, per group of Pythons where they differ."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for run in runs:
        result = run.results.get(module)
        if result is None or result["status"] not in ("loads", "refused"):
            continue  # not installed there: nothing to compare
        groups.setdefault(_refused(result), []).append(run.version)
    if len(groups) <= 1:
        return ", ".join(map(_code, next(iter(groups), ())))
    return "; ".join(
        f"{', '.join(versions)}: {', '.join(map(_code, names)) or 'none'}"
        for names, versions in groups.items()
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _version_cell(package: Package, runs: Sequence[Run]) -> str:
    found = [run.versions.get(package.requirement) for run in runs]
    distinct = {v for v in found if v}
    if len(distinct) <= 1:
        return next(iter(distinct), "-")
    return " / ".join(
        f"{v or '-'} ({run.version})" for v, run in zip(found, runs, strict=True)
    )


_WORDS = {"loads": "load", "not_installed": "not installed", "no_wheel": "no wheel"}


def _summary(runs: Sequence[Run], modules: Sequence[str]) -> list[str]:
    lines = []
    for run in runs:
        results = [run.results.get(m, {}) for m in modules]
        statuses = [r.get("status") for r in results]
        parts = []
        for status in dict.fromkeys(statuses):
            if not status:  # pragma: no cover
                continue
            part = f"{statuses.count(status)} {_WORDS.get(status, status)}"
            if status == "loads":
                fallback = sum(
                    1
                    for r in results
                    if r.get("status") == "loads" and r.get("fallbacks")
                )
                if fallback:
                    part += f" ({fallback} of them with a fallback)"
            parts.append(part)
        lines.append(
            f"- CPython {run.version}: {', '.join(parts)}, of {len(modules)} modules."
        )
    return lines


def render(
    packages: Sequence[Package],
    stdlib: Sequence[str],
    others: Sequence[str],
    runs: Sequence[Run],
    *,
    install: bool,
    today: datetime.date,
) -> str:
    """The Markdown page."""
    columns = [f"CPython {run.version}" for run in runs]
    third_party = [m for p in packages for m in p.modules]
    source = (
        "the newest release with a wheel for each Python, installed from PyPI into a "
        "fresh virtual environment per Python"
        if install
        else "the packages installed in each Python as it was"
    )
    lines = [
        "# Compatibility: which packages load in an interpreter",
        "",
        "<!-- Generated by scripts/compatibility.py: edit that script, not this page. -->",
        "",
        "aiointerp runs your functions in isolated subinterpreters (PEP 684). Extension",
        "modules must declare that they support them, and many popular ones do not yet:",
        "their import raises `ImportError: module ... does not support loading in",
        "subinterpreters`. This page lists what `python -m aiointerp check` reported for",
        "popular packages: each module imported in a fresh isolated interpreter, the kind",
        "aiointerp's pool uses. Every module that is installed loads in a process worker",
        '(`InterpreterPool(kind="process")`), and `kind="auto"` picks the kind per function:',
        "see [Worker kinds](worker-kinds.md).",
        "",
        f"- Generated on {today.isoformat()} by `scripts/compatibility.py`, on "
        f"{platform.system()} {platform.machine()}.",
        f"- Pythons: {', '.join(columns)}.",
        f"- Package versions: {source}.",
        "",
        "Results:",
        "",
        "- **loads**: the import succeeded. *loads (fallback)*: it succeeded although",
        "  the extension modules in the last column refused: the package went on without",
        "  them (a pure-Python fallback, usually slower, or a feature missing).",
        "- **refused**: an extension module (last column) does not support isolated",
        "  interpreters: the module cannot be imported inside aiointerp's workers.",
        "- **failed**: another error. **not installed**: no such module in that Python;",
        "  **no wheel**: pip found no wheel of the package for that Python.",
        "",
    ]
    if third_party:
        lines += ["## Third-party packages", ""]
        lines += [*_summary(runs, third_party), ""]
        rows = []
        for package in sorted(packages, key=lambda p: p.requirement.lower()):
            version = _version_cell(package, runs)
            for module in package.modules:
                cells = [_cell(run.results.get(module)) for run in runs]
                notes = _notes(module, runs)
                rows.append(
                    [package.requirement, version, _code(module), *cells, notes]
                )
        header = ["Package", "Version", "Module", *columns, "Refused extension modules"]
        lines += [*_table(header, rows), ""]
    if stdlib:
        lines += ["## Standard library", ""]
        lines += [*_summary(runs, stdlib), ""]
        rows = [
            [
                _code(m),
                *(_cell(run.results.get(m)) for run in runs),
                _notes(m, runs),
            ]
            for m in stdlib
        ]
        lines += [*_table(["Module", *columns, "Refused extension modules"], rows), ""]
        if any(
            run.results.get(m, {}).get("status") == "not_installed"
            for run in runs
            for m in stdlib
        ):
            lines += [
                "*not installed* in this table: that Python was built without the "
                "module (Debian and Ubuntu ship `tkinter` in a separate package).",
                "",
            ]
    if others:
        lines += ["## Other modules", ""]
        rows = [
            [
                _code(m),
                *(_cell(run.results.get(m)) for run in runs),
                _notes(m, runs),
            ]
            for m in others
        ]
        lines += [*_table(["Module", *columns, "Refused extension modules"], rows), ""]
    lines += [
        "## Check your own modules",
        "",
        "Run the check with the Python and the packages your application uses:",
        "",
        "```console",
        f"$ python -m aiointerp check {' '.join(_sample_modules(packages, stdlib))}",
        runs[0].sample if runs else "",
        "```",
        "",
        f"(Output on CPython {runs[0].version if runs else '?'}.) Each module is imported "
        "in a fresh isolated interpreter that",
        "gets your `sys.path`. The exit status is 0 only when every module loads, so the",
        "command can guard a CI job. `--json` prints a list of objects with the keys",
        "`module`, `status` (`loads`, `refused`, `failed` or `not_installed`), `extension`",
        "(the extension module that refused), `error`, `seconds` (the import time) and",
        "`fallbacks` (extension modules that refused while the import succeeded).",
        "`python -m aiointerp info` describes your Python, whether subinterpreters work",
        "there, whether aiointerp's pools run on it (free-threaded builds are refused), and",
        "the known CPython defects of that exact version: add it to bug reports.",
        "",
        "Check the modules your code imports, not only the top-level package: a package",
        "may load its extension modules only in submodules (compare `cryptography` and",
        "`cryptography.fernet`, `lxml` and `lxml.etree` in the table above), or on first",
        "use of a function, which the check cannot see.",
        "",
        "What to do with a refused module: run the code that needs it in process workers",
        '(`InterpreterPool(kind="process")`), or let `kind="auto"` send each function to an',
        "interpreter if it loads there and to a process if it does not (see",
        "[Worker kinds](worker-kinds.md)); a thread of the main interpreter",
        "(`anyio.to_thread.run_sync`) works too, without parallelism for CPU-bound code. Keep",
        "refused packages out of the top of the modules whose functions you send to",
        "interpreters.",
        "",
        "Limits of the check: an import that crashes the process (a segfault), never",
        "returns, or starts a thread that never ends (an interpreter is destroyed only",
        "once its threads have ended) cannot be contained by an interpreter: `check` then",
        "crashes or hangs too. This script checks each Python in a subprocess and, when",
        "that process dies or hangs, checks the modules again one process each, reporting",
        "*crashed* or *hangs*.",
        "",
        "## Regenerate this page",
        "",
        "```console",
        "$ python scripts/compatibility.py --python python3.13 --python python3.14",
        "```",
        "",
        "One `--python` per column. Each gets a throwaway virtual environment",
        "(`--venv-root DIR` keeps them for the next run), filled by the pip of the Python",
        "that runs the script (`pip --python`): that pip runs inside each target Python,",
        "so it must be recent enough for the newest one. The packages and modules are",
        "listed at the top of the script. `--no-install` checks the given Pythons with",
        "what they have installed.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--python",
        action="append",
        help="a Python to check (repeat for one column each; default: this one)",
    )
    parser.add_argument("--only", nargs="+", metavar="MODULE", help="check only these")
    parser.add_argument("--no-install", action="store_true", help="install nothing")
    parser.add_argument("--venv-root", type=Path, help="keep the venvs here")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    install = not args.no_install
    packages, stdlib, others, runs = collect(
        args.python or [sys.executable],
        args.only,
        install=install,
        venv_root=args.venv_root.resolve() if args.venv_root else None,
    )
    page = render(
        packages,
        stdlib,
        others,
        runs,
        install=install,
        today=datetime.datetime.now(datetime.UTC).date(),
    )
    args.output.write_text(page, encoding="utf-8")
    print(f"== wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
