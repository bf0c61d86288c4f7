"""Will a module work in an interpreter? The logic of ``python -m aiointerp check/info``.

:func:`check` imports each module in a fresh isolated interpreter, created as the
pool's workers are (:func:`aiointerp._interp.create`), and classifies the outcome:

* ``loads``: the import succeeded. Extension modules that refused to load while the
  import still succeeded (a package falling back to pure Python, as PyYAML does without
  ``yaml._yaml``) are listed in :attr:`CheckResult.fallbacks`;
* ``refused``: an extension module does not support isolated interpreters
  (:attr:`CheckResult.extension` names it, e.g. ``numpy._core._multiarray_umath``);
* ``failed``: any other exception (:attr:`CheckResult.error`: its type and message);
* ``not_installed``: the module is not on the host's ``sys.path``.

:func:`info` describes this Python for bug reports, with the known CPython defects
of this exact version (the table of :mod:`aiointerp._defects`).

Nothing imports this module but the command line (``aiointerp.__main__``): it costs
``import aiointerp`` nothing.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import sysconfig
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final, Literal

from ._defects import Defect, defects_of, free_threaded_refusal
from ._refusal import PATTERN

__all__ = [
    "CheckResult",
    "Info",
    "Status",
    "check",
    "check_module",
    "format_info",
    "format_results",
    "info",
    "is_module_name",
]

Status = Literal["loads", "refused", "failed", "not_installed"]

# -- check


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What importing one module in a fresh isolated interpreter did.

    :ivar module: the module name, as given
    :ivar status: ``"loads"``, ``"refused"``, ``"failed"`` or ``"not_installed"``
    :ivar extension: ``refused``: the extension module that refused to load (full
        dotted name where it could be told, else as CPython's message names it)
    :ivar error: ``refused``: CPython's message; ``failed``: the exception's type and
        message; ``not_installed``: why the module is considered absent
    :ivar seconds: how long the import took inside the interpreter (``None`` when
        the module is not installed)
    :ivar fallbacks: ``loads``: extension modules that refused to load while the
        import succeeded without them (the package used a fallback)
    """

    module: str
    status: Status
    extension: str | None = None
    error: str | None = None
    seconds: float | None = None
    fallbacks: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (``fallbacks`` becomes a list)."""
        return {
            "module": self.module,
            "status": self.status,
            "extension": self.extension,
            "error": self.error,
            "seconds": self.seconds,
            "fallbacks": list(self.fallbacks),
        }


#: Run inside the interpreter; stdlib and :mod:`aiointerp._interp` only (the pool's
#: workers import that too). The ImportError of a refusing extension carries no
#: ``name`` and CPython's message may name only the last part (``_core`` for
#: ``msgspec._core``), so the extension loader is wrapped to record the full name of
#: every extension whose creation raised. The result leaves through a queue as a
#: tuple of shareable values.
_PROBE: Final = """\
import sys
sys.path[:] = {path!r}
sys.stdout = sys.stderr  # the module's prints must not mix with the report
import re
from importlib import import_module
from importlib.machinery import ExtensionFileLoader
from time import perf_counter
from aiointerp._interp import open_queue

REFUSAL = re.compile({refusal!r}, re.IGNORECASE)
NAMED = re.compile(r"module (\\S+) does not support loading in subinterpreters")
refused = []  # (full name, message) of each extension that refused

def watch(method):
    def wrapper(self, *args):
        try:
            return method(self, *args)
        except ImportError as exc:
            if REFUSAL.search(str(exc)):
                refused.append((self.name, str(exc)))
            raise
    return wrapper

ExtensionFileLoader.create_module = watch(ExtensionFileLoader.create_module)
ExtensionFileLoader.exec_module = watch(ExtensionFileLoader.exec_module)

def chain(exc):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # also a context raised `from None`

def full_name(exc):
    match = NAMED.search(str(exc))
    short = match.group(1) if match else exc.name
    for name, _ in refused:
        if short is None or name == short or name.endswith("." + short):
            return name
    return short

def describe(exc):
    kind = type(exc)
    where = "" if kind.__module__ == "builtins" else kind.__module__ + "."
    return f"{{where}}{{kind.__qualname__}}: {{exc}}"

def probe(name):
    start = perf_counter()
    try:
        import_module(name)
    except BaseException as exc:
        seconds = perf_counter() - start
        for link in chain(exc):
            if isinstance(link, ImportError) and REFUSAL.search(str(link)):
                return ("refused", full_name(link), str(link), seconds, ())
        parts = name.split(".")
        parents = {{".".join(parts[:i]) for i in range(1, len(parts) + 1)}}
        if isinstance(exc, ModuleNotFoundError) and exc.name in parents:
            return ("not_installed", None, describe(exc), None, ())
        return ("failed", None, describe(exc), seconds, ())
    seconds = perf_counter() - start
    return ("loads", None, None, seconds, tuple(dict.fromkeys(n for n, _ in refused)))

open_queue({qid!r})[0](probe({module!r}))
"""

#: What the refusals of an isolated interpreter say (see :mod:`aiointerp._refusal`).
_REFUSAL: Final = PATTERN


def is_module_name(name: str) -> bool:
    """Whether *name* is an absolute dotted module name (``pkg.sub``)."""
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def check_module(name: str) -> CheckResult:
    """Import *name* in a fresh isolated interpreter and report what happened.

    The interpreter gets the host's ``sys.path``, is used for this one import and
    destroyed. Whether the module exists is looked up in the host first without
    importing anything (:func:`importlib.util.find_spec` of its top-level package);
    a missing submodule is told apart inside the interpreter.

    Blocking: creating the interpreter takes about 10 ms, the import what it takes.
    A module whose import never returns blocks this call; one whose import crashes
    the process (a segfault, ``os._exit``) ends it, as it would in a pool.

    :param name: an absolute module name, e.g. ``"numpy"`` or ``"lxml.etree"``
    :raises ValueError: *name* is not a module name
    :raises RuntimeError: the check itself could not run in the interpreter
    :raises ImportError: this Python has no subinterpreters
    """
    if not is_module_name(name):
        raise ValueError(f"not a module name: {name!r}")
    from . import _interp

    try:
        spec = importlib.util.find_spec(name.partition(".")[0])
    except (ImportError, ValueError) as exc:  # a broken finder or path entry
        return CheckResult(name, "failed", error=f"{type(exc).__name__}: {exc}")
    if spec is None:
        return CheckResult(name, "not_installed", error="not found on sys.path")
    qid = _interp.create_queue()
    try:
        _, get = _interp.open_queue(qid)
        interp = _interp.create()
        try:
            code = _PROBE.format(
                path=list(sys.path), refusal=_REFUSAL, qid=qid, module=name
            )
            try:
                interp.exec(code)
            except _interp.ExecFailed as exc:
                raise RuntimeError(
                    f"could not check {name!r} in an interpreter:\n{exc}"
                ) from None
            status, extension, error, seconds, fallbacks = get()
        finally:
            interp.close()
    finally:
        _interp.destroy_queue(qid)
    return CheckResult(name, status, extension, error, seconds, tuple(fallbacks))


def check(modules: Sequence[str]) -> list[CheckResult]:
    """:func:`check_module` for each of *modules*, in order, one interpreter each.

    The imports run one after the other on a helper thread (entering an interpreter
    from the main thread costs more on 3.14), each in its own interpreter.

    :param modules: absolute module names
    :raises ValueError: one of *modules* is not a module name (before any import)
    """
    for name in modules:
        if not is_module_name(name):
            raise ValueError(f"not a module name: {name!r}")
    results: list[CheckResult] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            results.extend(check_module(name) for name in modules)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="aiointerp-check")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return results


_REFUSED_HINT: Final = (
    "refused: a C extension module does not support isolated interpreters "
    "(PEP 684). Call code that needs it in a process (anyio.to_process.run_sync, "
    "ProcessPoolExecutor) or in a thread (anyio.to_thread.run_sync), or ask its "
    "maintainers for subinterpreter support."
)

_LABELS: Final[dict[Status, str]] = {
    "loads": "loads",
    "refused": "refused",
    "failed": "failed",
    "not_installed": "not installed",
}


def _detail(result: CheckResult) -> str:
    if result.status == "loads":
        text = f"{(result.seconds or 0.0) * 1000:.0f} ms"
        if result.fallbacks:
            text += f"; loaded without {', '.join(result.fallbacks)} (refused)"
        return text
    if result.status == "refused":
        return f"by {result.extension or 'an extension module'}"
    if result.status == "failed":
        return next(iter((result.error or "").strip().splitlines()), "")
    return ""


def format_results(results: list[CheckResult]) -> str:
    """An aligned table, one line per module, and a hint when a module was refused."""
    rows = [("MODULE", "STATUS", "DETAIL")]
    rows += [(r.module, _LABELS[r.status], _detail(r)) for r in results]
    first = max(len(row[0]) for row in rows)
    second = max(len(row[1]) for row in rows)
    lines = [f"{a:<{first}}  {b:<{second}}  {c}".rstrip() for a, b, c in rows]
    if any(r.status == "refused" for r in results):
        lines += ["", textwrap.fill(_REFUSED_HINT, 88)]
    return "\n".join(lines)


# -- info


@dataclass(frozen=True, slots=True)
class Info:
    """This Python and aiointerp's view of it (``python -m aiointerp info``).

    :ivar python: :data:`sys.version`
    :ivar implementation: :data:`sys.implementation.name`
    :ivar build: ``"default (GIL)"``, ``"free-threaded, GIL disabled"``, ... and
        ``", debug"`` for debug builds
    :ivar platform: :func:`platform.platform`
    :ivar subinterpreters: whether an isolated interpreter could be created
    :ivar subinterpreters_detail: which module provides them, or why not
    :ivar refused: why aiointerp's pools refuse this Python (a free-threaded
        build), or ``None`` when they run on it
    :ivar cpu_count: :func:`os.cpu_count`
    :ivar process_cpu_count: CPUs this process may use (:func:`os.process_cpu_count`)
    :ivar aiointerp: aiointerp's version (``"unknown"`` when not installed)
    :ivar aiointerp_path: where aiointerp was imported from
    :ivar anyio: anyio's version, or ``"not installed"``
    :ivar defects: known CPython defects of this exact Python
    """

    python: str
    implementation: str
    build: str
    platform: str
    subinterpreters: bool
    subinterpreters_detail: str
    refused: str | None
    cpu_count: int | None
    process_cpu_count: int | None
    aiointerp: str
    aiointerp_path: str
    anyio: str
    defects: tuple[Defect, ...]

    def as_dict(self) -> dict[str, Any]:
        """The description as JSON-ready values."""
        data: dict[str, Any] = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name != "defects"
        }
        data["defects"] = [
            {
                "versions": _versions(defect),
                "summary": defect.summary,
                "impact": defect.impact,
                "reference": defect.reference,
            }
            for defect in self.defects
        ]
        return data


def _build() -> str:
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        gil = getattr(sys, "_is_gil_enabled", lambda: True)()
        build = f"free-threaded, GIL {'enabled' if gil else 'disabled'}"
    else:
        build = "default (GIL)"
    if hasattr(sys, "gettotalrefcount"):
        build += ", debug"
    return build


def _subinterpreters() -> tuple[bool, str]:
    if sys.implementation.name != "cpython":
        return False, f"{sys.implementation.name} has no subinterpreters"
    try:
        from . import _interp
    except ImportError as exc:
        return False, str(exc)
    source = (
        "concurrent.interpreters"
        if sys.version_info >= (3, 14)
        else "CPython's private _interpreters module"
    )
    start = time.perf_counter()
    try:
        interp = _interp.create()
        try:
            interp.exec("pass")
        finally:
            interp.close()
    except Exception as exc:
        return False, f"could not create one: {type(exc).__name__}: {exc}"
    ms = (time.perf_counter() - start) * 1000
    return True, f"{source}; an isolated interpreter took {ms:.1f} ms"


def _version_of(distribution: str, missing: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return missing


def info() -> Info:
    """Describe this Python, its subinterpreters, aiointerp and its known defects.

    Creates (and destroys) one interpreter to tell whether subinterpreters work.
    """
    available, detail = _subinterpreters()
    process_cpu_count = getattr(os, "process_cpu_count", os.cpu_count)
    return Info(
        python=sys.version,
        implementation=sys.implementation.name,
        build=_build(),
        platform=platform.platform(),
        subinterpreters=available,
        subinterpreters_detail=detail,
        refused=free_threaded_refusal(),
        cpu_count=os.cpu_count(),
        process_cpu_count=process_cpu_count(),
        aiointerp=_version_of("aiointerp", "unknown"),
        aiointerp_path=os.path.dirname(os.path.abspath(__file__)),
        anyio=_version_of("anyio", "not installed"),
        defects=tuple(defects_of()),
    )


def format_info(description: Info) -> str:
    """:func:`info` as aligned ``name  value`` lines, then the known defects."""
    d = description
    rows = [
        ("Python", d.python.replace("\n", " ")),
        ("implementation", f"{d.implementation}, {d.build} build"),
        ("platform", d.platform),
        (
            "subinterpreters",
            f"{'available' if d.subinterpreters else 'unavailable'}: "
            f"{d.subinterpreters_detail}",
        ),
        ("CPUs", f"{d.cpu_count} (usable by this process: {d.process_cpu_count})"),
        ("aiointerp", f"{d.aiointerp} ({d.aiointerp_path})"),
        ("anyio", d.anyio),
    ]
    pools = "supported" if d.refused is None else f"refused: {d.refused}."
    rows.insert(4, ("pools", pools))
    width = max(len(name) for name, _ in rows)
    indent = " " * (width + 2)
    lines = [
        textwrap.fill(f"{name:<{width}}  {value}", 88, subsequent_indent=indent)
        if name == "pools"
        else f"{name:<{width}}  {value}"
        for name, value in rows
    ]
    version = sys.version.split()[0]
    if not d.defects:
        lines.append(f"known CPython defects: none known for {version}")
        return "\n".join(lines)
    lines.append(f"known CPython defects that affect {version}:")
    for defect in d.defects:
        text = f"{_versions(defect)}: {defect.summary}; {defect.impact}."
        lines.append(
            textwrap.fill(text, 88, initial_indent="- ", subsequent_indent="  ")
        )
        lines.append(f"  see {defect.reference}")
    return "\n".join(lines)


def _versions(defect: Defect) -> str:
    """The releases a defect affects, in words."""
    first = ".".join(map(str, defect.first))
    if defect.last is None:
        return f"{first} and later {defect.first[0]}.{defect.first[1]} releases"
    if defect.last == defect.first:
        return first
    return f"{first} to {'.'.join(map(str, defect.last))}"
