"""Will a module or a function work in an interpreter? ``python -m aiointerp check/info``.

:func:`check` imports each module in a fresh isolated interpreter, created as the
pool's workers are (:func:`aiointerp._wire._interp.create`), and classifies the outcome:

* ``loads``: the import succeeded. Extension modules that refused to load while the
  import still succeeded (a package falling back to pure Python, as PyYAML does without
  ``yaml._yaml``) are listed in :attr:`CheckResult.fallbacks`;
* ``refused``: an extension module does not support isolated interpreters
  (:attr:`CheckResult.extension` names it, e.g. ``numpy._core._multiarray_umath``),
  or a package loads but some of its submodules are refused (``PIL``, whose
  ``PIL.Image`` needs ``PIL._imaging``: :attr:`CheckResult.submodules`);
* ``failed``: any other exception (:attr:`CheckResult.error`: its type and message);
* ``not_installed``: the module is not on the host's ``sys.path``.

For a function (``module:function``), :func:`check_function` tells how a pool runs
it (:attr:`CheckResult.runs`): in an interpreter by reference, in an interpreter by
value (cloudpickle), or only in a process.

:func:`info` describes this Python for bug reports, with the known CPython defects
of this exact version (the table of :mod:`aiointerp._host._defects`).

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
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any, Final, Literal

from .._host._defects import Defect, defects_of, free_threaded_refusal

__all__ = [
    "SUBMODULE_LIMIT",
    "SUBMODULE_SECONDS",
    "CheckResult",
    "Info",
    "Runs",
    "Status",
    "Submodules",
    "check",
    "check_function",
    "check_import",
    "check_module",
    "format_info",
    "format_results",
    "info",
    "is_module_name",
    "is_target",
]

Status = Literal["loads", "refused", "failed", "not_installed"]
Runs = Literal["reference", "value", "process"]

#: Bounds of the walk through a package's submodules (per package checked).
SUBMODULE_LIMIT: Final = 300
SUBMODULE_SECONDS: Final = 15.0
#: Submodules never imported by the walk (nor descended into): programs and tests.
_SKIPPED: Final = ("__main__", "test", "tests", "testing", "_tests", "conftest")

# -- check


@dataclass(frozen=True, slots=True)
class Submodules:
    """What importing the submodules of a package did (``check PACKAGE``).

    :ivar checked: how many submodules were imported
    :ivar complete: every submodule was imported (``False``: the walk stopped at
        :data:`SUBMODULE_LIMIT` modules or after :data:`SUBMODULE_SECONDS`)
    :ivar refused: ``(submodule, extension module that refused)`` for each submodule
        whose import was refused: first those that import the extension themselves
        (``PIL.Image``, and ``PIL._imaging`` itself), then those refused through
        them (``PIL.BmpImagePlugin``), each group in the order of the walk
    """

    checked: int
    complete: bool
    refused: tuple[tuple[str, str | None], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "complete": self.complete,
            "refused": [
                {"module": name, "extension": extension}
                for name, extension in self.refused
            ],
        }


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What importing one module (or loading one function) in fresh interpreters did.

    :ivar module: what was checked, as given: a module (``"PIL"``) or a function
        (``"myapp.cpu:hash_pw"``)
    :ivar status: ``"loads"``, ``"refused"``, ``"failed"`` or ``"not_installed"``
        (for a function: of its module, or ``"failed"`` when the attribute is
        missing or cannot be called)
    :ivar extension: ``refused``: the extension module that refused to load (full
        dotted name where it could be told, else as CPython's message names it)
    :ivar error: ``refused``: CPython's message; ``failed``: the exception's type and
        message; ``not_installed``: why the module is considered absent
    :ivar seconds: how long the import took inside the interpreter (``None`` when
        the module is not installed)
    :ivar fallbacks: ``loads``: extension modules that refused to load while the
        import succeeded without them (the package used a fallback)
    :ivar submodules: a package: what importing its submodules did; a package
        that loads is ``refused`` when one of them is refused by an extension it
        did not fall back from
    :ivar runs: a function: how a pool runs it: ``"reference"`` (in an interpreter,
        pickled by reference), ``"value"`` (in an interpreter, sent by value with
        cloudpickle: its module is refused there, or it cannot be pickled by
        reference, but its code loads), ``"process"`` (only a process can run it);
        ``None`` for a module, or a function that cannot run at all
    :ivar note: a function: why it runs that way, or what would change it
    """

    module: str
    status: Status
    extension: str | None = None
    error: str | None = None
    seconds: float | None = None
    fallbacks: tuple[str, ...] = ()
    submodules: Submodules | None = None
    runs: Runs | None = None
    note: str | None = None

    @property
    def is_function(self) -> bool:
        """Whether a function (``module:attribute``) was checked."""
        return ":" in self.module

    @property
    def ok(self) -> bool:
        """Whether it can run in an interpreter (the exit status is 0 when all are)."""
        if self.is_function:
            return self.runs in ("reference", "value")
        return self.status == "loads"

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (``fallbacks`` becomes a list)."""
        return {
            "module": self.module,
            "status": self.status,
            "extension": self.extension,
            "error": self.error,
            "seconds": self.seconds,
            "fallbacks": list(self.fallbacks),
            "submodules": None
            if self.submodules is None
            else self.submodules.as_dict(),
            "runs": self.runs,
            "note": self.note,
        }


#: Run inside the interpreter; stdlib and :mod:`aiointerp._wire._interp` only (the pool's
#: workers import that too). The ImportError of a refusing extension carries no
#: ``name`` and CPython's message may name only the last part (``_core`` for
#: ``msgspec._core``), so the extension loader is wrapped to record the full name of
#: every extension whose creation raised. :func:`_probe_code` appends the call that
#: runs (a module, a package's submodules, a function, a pickled function); its
#: result leaves through a queue as a tuple of shareable values.
_PROBE: Final = r"""
sys.stdout = sys.stderr  # the module's prints must not mix with the report
import re
from importlib import import_module
from importlib.machinery import ExtensionFileLoader
from time import perf_counter
from aiointerp._wire._interp import open_queue
from aiointerp._wire._refusal import NAMED as NAMED_PATTERN, PATTERN, links as chain

REFUSAL = re.compile(PATTERN, re.IGNORECASE)
NAMED = re.compile(NAMED_PATTERN)
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

def refusal(exc):
    for link in chain(exc):
        if isinstance(link, ImportError) and REFUSAL.search(str(link)):
            return link
    return None

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
    return f"{where}{kind.__qualname__}: {exc}"

def probe(name):
    start = perf_counter()
    try:
        import_module(name)
    except BaseException as exc:
        return failure(name, exc, perf_counter() - start)
    seconds = perf_counter() - start
    return ("loads", None, None, seconds, tuple(dict.fromkeys(n for n, _ in refused)))

def failure(name, exc, seconds):
    link = refusal(exc)
    if link is not None:
        return ("refused", full_name(link), str(link), seconds, ())
    parts = name.split(".")
    parents = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    if isinstance(exc, ModuleNotFoundError) and exc.name in parents:
        return ("not_installed", None, describe(exc), None, ())
    return ("failed", None, describe(exc), seconds, ())

def probe_import(name, fromlist):
    # what `from name import *fromlist` imports (`import name` when it is empty):
    # name, then each item it lacks as an attribute, as a submodule; one row each
    rows = [(name, *probe(name))]
    module = sys.modules.get(name) if rows[0][1] == "loads" else None
    if module is not None and not hasattr(module, "__path__"):
        # a plain module: its items are attributes it has (or an error of the
        # import statement, not of subinterpreters)
        return tuple(rows + [(name + "." + item, "attribute", None, None, None, ())
                             for item in fromlist])
    for item in fromlist if hasattr(module, "__path__") else ():
        sub = name + "." + item
        start = perf_counter()
        try:
            getattr(module, item)  # a package's __getattr__ may import it
        except AttributeError:
            rows.append((sub, *probe(sub)))
        except BaseException as exc:
            rows.append((sub, *failure(sub, exc, perf_counter() - start)))
        else:
            rows.append((sub, "attribute", None, None, None, ()))
        if rows[-1][1] == "refused":
            break
    return tuple(rows)

def walk(package, limit, budget):
    # breadth first through the package's submodules, each imported once
    import pkgutil
    start = perf_counter()
    checked, found, queue = 0, [], [package]
    while queue:
        parent = queue.pop(0)
        path = getattr(sys.modules.get(parent), "__path__", None)
        if path is None:
            continue
        try:
            infos = sorted(pkgutil.iter_modules(path), key=lambda info: info.name)
        except Exception:
            continue
        for info in infos:
            if info.name in SKIPPED or info.name.startswith("test_"):
                continue
            if checked >= limit or perf_counter() - start > budget:
                return (checked, False, ordered(found))
            name = parent + "." + info.name
            checked += 1
            try:
                import_module(name)
            except (Exception, SystemExit) as exc:
                link = refusal(exc)
                if link is not None:
                    found.append((name, full_name(link), importer(link) in (None, name)))
                continue
            if info.ispkg:
                queue.append(name)
    return (checked, True, ordered(found))

def importer(link):
    # the module whose top-level code imported the refused extension, if any
    tb, found = link.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "<module>":
            name = frame.f_globals.get("__name__")
            if name != "__main__":  # not this probe
                found = name
        tb = tb.tb_next
    return found

def ordered(found):
    # those that import the extension themselves first (PIL.Image), then the others
    first = [(name, ext) for name, ext, direct in found if direct]
    return tuple(first + [(name, ext) for name, ext, direct in found if not direct])

def probe_module(name, limit, budget):
    result = probe(name)
    subs = None
    if result[0] == "loads" and hasattr(sys.modules[name], "__path__") and limit:
        subs = walk(name, limit, budget)
    return (*result, subs)

def probe_function(name, attribute):
    result = probe(name)
    if result[0] != "loads":
        return (*result, None)
    status, _, _, seconds, fallbacks = result
    obj = sys.modules[name]
    try:
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        return ("failed", None, describe(exc), seconds, fallbacks, None)
    import inspect
    if not callable(obj):
        why = f"{name}:{attribute} cannot be called (a {type(obj).__qualname__})"
        return ("failed", None, why, seconds, fallbacks, None)
    if inspect.iscoroutinefunction(obj) or inspect.isasyncgenfunction(obj):
        why = f"{name}:{attribute} is async: pools run synchronous functions"
        return ("failed", None, why, seconds, fallbacks, None)
    import pickle
    try:  # what the host's pickle makes of it, loaded as a worker loads it
        pickle.loads(pickle.dumps(obj, 5))
    except Exception as exc:
        return (*result, describe(exc))
    return (*result, None)

def probe_blob(blob):
    import pickle
    start = perf_counter()
    try:
        pickle.loads(blob)
    except BaseException as exc:
        seconds = perf_counter() - start
        link = refusal(exc)
        if link is not None:
            return ("refused", full_name(link), str(link), seconds, ())
        return ("failed", None, describe(exc), seconds, ())
    return ("loads", None, None, perf_counter() - start, ())
"""


def is_module_name(name: str) -> bool:
    """Whether *name* is an absolute dotted module name (``pkg.sub``)."""
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def is_target(text: str) -> bool:
    """Whether *text* names a module (``pkg.sub``) or a function (``pkg.sub:func``)."""
    module, colon, attribute = text.partition(":")
    return is_module_name(module) and (not colon or is_module_name(attribute))


def _run_probe(what: str, call: str) -> tuple[Any, ...]:
    """Run :data:`_PROBE` and *call* in a fresh interpreter; return what *call* put."""
    from .._wire import _interp

    qid = _interp.create_queue()
    try:
        _, get = _interp.open_queue(qid)
        interp = _interp.create()
        try:
            prelude = (
                f"import sys\nsys.path[:] = {list(sys.path)!r}\n"
                f"SKIPPED = {_SKIPPED!r}\n"
            )
            code = f"{prelude}{_PROBE}\nopen_queue({qid!r})[0]({call})\n"
            try:
                interp.exec(code)
            except _interp.ExecFailed as exc:
                raise RuntimeError(
                    f"could not check {what!r} in an interpreter:\n{exc}"
                ) from None
            result: tuple[Any, ...] = get()
        finally:
            interp.close()
    finally:
        _interp.destroy_queue(qid)
    return result


def _installed(name: str) -> CheckResult | None:
    """A result for a module that cannot be imported at all, else ``None``.

    Looked up in the host without importing anything (:func:`importlib.util.find_spec`
    of the top-level package).
    """
    try:
        spec = importlib.util.find_spec(name.partition(".")[0])
    except (ImportError, ValueError) as exc:  # a broken finder or path entry
        return CheckResult(name, "failed", error=f"{type(exc).__name__}: {exc}")
    if spec is None:
        return CheckResult(name, "not_installed", error="not found on sys.path")
    return None


def check_module(name: str, *, submodules: bool = True) -> CheckResult:
    """Import *name* in a fresh isolated interpreter and report what happened.

    The interpreter gets the host's ``sys.path``, is used for this one check and
    destroyed. Whether the module exists is looked up in the host first without
    importing anything (:func:`importlib.util.find_spec` of its top-level package);
    a missing submodule is told apart inside the interpreter.

    A package that loads has its submodules imported too, in the same interpreter,
    breadth first, at most :data:`SUBMODULE_LIMIT` of them for at most
    :data:`SUBMODULE_SECONDS` (``__main__`` modules and test packages are skipped):
    ``import PIL`` loads, but ``PIL.Image`` needs the extension ``PIL._imaging``,
    which refuses. The package is then ``refused`` by that extension, unless the
    package fell back from it when it was imported (PyYAML without ``yaml._yaml``).

    Blocking: creating the interpreter takes about 10 ms, the import what it takes.
    A module whose import never returns blocks this call; one whose import crashes
    the process (a segfault, ``os._exit``) ends it, as it would in a pool.

    :param name: an absolute module name, e.g. ``"numpy"`` or ``"lxml.etree"``
    :param submodules: import a package's submodules too
    :raises ValueError: *name* is not a module name
    :raises RuntimeError: the check itself could not run in the interpreter
    :raises ImportError: this Python has no subinterpreters
    """
    if not is_module_name(name):
        raise ValueError(f"not a module name: {name!r}")
    absent = _installed(name)
    if absent is not None:
        return absent
    limit = SUBMODULE_LIMIT if submodules else 0
    status, extension, error, seconds, fallbacks, walked = _run_probe(
        name, f"probe_module({name!r}, {limit!r}, {SUBMODULE_SECONDS!r})"
    )
    result = CheckResult(name, status, extension, error, seconds, tuple(fallbacks))
    if walked is None:
        return result
    checked, complete, found = walked
    subs = Submodules(checked, complete, tuple((n, e) for n, e in found))
    blocking = [(n, e) for n, e in subs.refused if e not in result.fallbacks]
    if not blocking:
        return replace(result, submodules=subs)
    extension = blocking[0][1]
    error = (
        f"import {name} loads, but {_refused_count(blocking, subs)}: "
        f"{_listed([n for n, _ in blocking])}, refused by "
        f"{_listed(list(dict.fromkeys(str(e) for _, e in blocking)))}"
    )
    return replace(
        result, status="refused", extension=extension, error=error, submodules=subs
    )


def check_import(name: str, fromlist: Sequence[str] = ()) -> tuple[CheckResult, ...]:
    """What ``from name import *fromlist`` does in a fresh isolated interpreter.

    With an empty *fromlist*, what ``import name`` does. One result for *name*, then
    one for each item of *fromlist* that *name* (a package) lacks as an attribute
    once imported, imported as its submodule ``name.item`` (as the import statement
    does), in the same interpreter; the items after a refused one are not imported.
    An item that is an attribute is ``loads``, with a :attr:`CheckResult.note`. A
    package's other submodules are not imported (``check_module(name,
    submodules=False)`` for a plain ``import``). ``kind="auto"`` pools run this
    before a function's first call (:mod:`aiointerp._host._probes`).

    Blocking, as :func:`check_module`.

    :param name: an absolute module name
    :param fromlist: the names imported from it
    :raises ValueError: *name* or an item of *fromlist* is not a name
    :raises RuntimeError: the check itself could not run in the interpreter
    :raises ImportError: this Python has no subinterpreters
    """
    fromlist = tuple(fromlist)
    if not is_module_name(name) or not all(item.isidentifier() for item in fromlist):
        raise ValueError(f"not an import: from {name!r} import {fromlist!r}")
    absent = _installed(name)
    if absent is not None:
        return (absent,)
    rows = _run_probe(name, f"probe_import({name!r}, {fromlist!r})")
    results = []
    for module, status, extension, error, seconds, fallbacks in rows:
        if status == "attribute":
            note = f"{module.rpartition('.')[2]} is an attribute of {name}"
            results.append(CheckResult(module, "loads", note=note))
        else:
            results.append(
                CheckResult(module, status, extension, error, seconds, fallbacks)
            )
    return tuple(results)


def _refused_count(refused: Sequence[object], subs: Submodules) -> str:
    checked = f"{subs.checked}" if subs.complete else f"the first {subs.checked}"
    return f"{len(refused)} of its {checked} submodules are refused"


def check_function(target: str) -> CheckResult:
    """How a pool would run the function *target* (``"myapp.cpu:hash_pw"``).

    Its module is imported in a fresh isolated interpreter, the attribute looked up
    and pickled there as the host pickles a function (by reference), then loaded
    again. When that fails (a module refused by an extension, a module-level lambda)
    and cloudpickle is installed, the host imports the module itself, pickles the
    function *by value* as a pool does (:func:`aiointerp._host._routing.pickle_by_value`: its
    code and the module's functions it uses travel, the other modules it uses are
    imported by name) and loads that in another fresh interpreter: what
    ``kind="auto"`` and ``kind="interpreter"`` do. See :attr:`CheckResult.runs` for
    the verdicts.

    :param target: ``module:attribute``, the attribute dotted (``Class.method``)
    :raises ValueError: *target* is not ``module:attribute``
    :raises RuntimeError: the check itself could not run in the interpreter
    :raises ImportError: this Python has no subinterpreters
    """
    name, _, attribute = target.partition(":")
    if not (is_target(target) and attribute):
        raise ValueError(f"not module:function: {target!r}")
    absent = _installed(name)
    if absent is not None:
        return replace(absent, module=target)
    status, extension, error, seconds, fallbacks, by_reference = _run_probe(
        target, f"probe_function({name!r}, {attribute!r})"
    )
    result = CheckResult(target, status, extension, error, seconds, tuple(fallbacks))
    if status == "loads" and by_reference is None:
        return replace(result, runs="reference")
    if status not in ("loads", "refused"):
        return result
    if status == "loads":
        why = f"it cannot be pickled by reference ({by_reference})"
    else:
        why = f"{name} is refused by {extension}"
    try:
        import cloudpickle  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        if status == "loads":  # a process cannot load it either
            note = f"{why}: install cloudpickle (pip install cloudpickle) to send it by value"
            return replace(result, status="failed", error=by_reference, note=note)
        note = (
            f"{why}: only a process can run it; install cloudpickle (pip install "
            "cloudpickle) to try sending it by value to an interpreter"
        )
        return replace(result, runs="process", note=note)
    del cloudpickle  # it is there: _routing.pickle_by_value uses it
    try:
        blob = _by_value(name, attribute)
    except Exception as exc:  # the host cannot import or pickle it either
        error = f"{type(exc).__name__}: {exc}"
        return replace(
            result, status="failed", error=error, note=f"{why}; here: {error}"
        )
    loaded, refused_by, load_error, _, _ = _run_probe(target, f"probe_blob({blob!r})")
    if loaded == "loads":
        note = f"{why}; sent by value (cloudpickle), its code loads in an interpreter"
        return replace(result, runs="value", note=note)
    if loaded == "refused":
        note = f"{why}; sent by value, its code is refused too (by {refused_by})"
    else:
        note = f"{why}; sent by value, its code does not load: {load_error}"
    return replace(result, runs="process", note=note)


def _by_value(name: str, attribute: str) -> bytes:
    """The function pickled by value, as the pool sends it (host side).

    :raises Exception: its module does not import here, or it cannot be pickled so
    """
    import functools
    import importlib

    from .._host._routing import pickle_by_value

    module = importlib.import_module(name)
    func = functools.reduce(getattr, attribute.split("."), module)
    blob = pickle_by_value(func)
    if blob is None:
        raise TypeError(f"{name}:{attribute} cannot be pickled by value")
    return blob


def check(targets: Sequence[str], *, submodules: bool = True) -> list[CheckResult]:
    """:func:`check_module` or :func:`check_function` for each of *targets*, in order.

    The checks run one after the other on a helper thread (entering an interpreter
    from the main thread costs more on 3.14), each in fresh interpreters.

    :param targets: absolute module names, or ``module:function``
    :param submodules: import the submodules of packages too
    :raises ValueError: one of *targets* is not a module name or ``module:function``
        (before any import)
    """
    for target in targets:
        if not is_target(target):
            raise ValueError(f"not a module name: {target!r}")
    results: list[CheckResult] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            for target in targets:
                if ":" in target:
                    results.append(check_function(target))
                else:
                    results.append(check_module(target, submodules=submodules))
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
    "(PEP 684). Run code that needs it in a process: "
    'InterpreterPool(kind="process"), or kind="auto", which runs each function in an '
    "interpreter when it can and in a process otherwise; or ask the extension's "
    "maintainers for subinterpreter support."
)

_LABELS: Final[dict[Status, str]] = {
    "loads": "loads",
    "refused": "refused",
    "failed": "failed",
    "not_installed": "not installed",
}
_RUNS: Final[dict[Runs, str]] = {
    "reference": "by reference",
    "value": "by value",
    "process": "process",
}
#: the most submodule names shown in the table (``--json`` has all)
_SHOWN: Final = 4


def _label(result: CheckResult) -> str:
    if result.runs is not None:
        return _RUNS[result.runs]
    return _LABELS[result.status]


def _listed(names: Sequence[str]) -> str:
    if len(names) <= _SHOWN:
        return ", ".join(names)
    return f"{', '.join(names[:_SHOWN])} and {len(names) - _SHOWN} more"


def _detail(result: CheckResult) -> str:
    if result.is_function:
        return _function_detail(result)
    subs = result.submodules
    if result.status == "refused" and subs is not None and subs.refused:
        blocking = [n for n, e in subs.refused if e not in result.fallbacks]
        others = {e for n, e in subs.refused if e != result.extension}
        by = f"by {result.extension}"
        if others:
            by += f" (and {len(others)} more extension{'s' * (len(others) > 1)})"
        return f"{by}: {_refused_count(blocking, subs)}: {_listed(blocking)}"
    if result.status == "loads":
        text = f"{(result.seconds or 0.0) * 1000:.0f} ms"
        if result.fallbacks:
            text += f"; loaded without {', '.join(result.fallbacks)} (refused)"
        if subs is not None:
            text += f"; {subs.checked} submodules checked"
            if not subs.complete:
                text += " (the first ones: the walk stopped there)"
            if subs.refused:
                shown = _listed([n for n, _ in subs.refused])
                text += f"; {shown} need what it loaded without"
        return text
    if result.status == "refused":
        return f"by {result.extension or 'an extension module'}"
    if result.status == "failed":
        return next(iter((result.error or "").strip().splitlines()), "")
    return ""


def _function_detail(result: CheckResult) -> str:
    if result.runs == "reference":
        ms = (result.seconds or 0.0) * 1000
        return f"runs in an interpreter (its module loads in {ms:.0f} ms)"
    if result.runs == "value":
        return f"runs in an interpreter: {result.note}"
    if result.runs == "process":
        return f"only a process can run it: {result.note}"
    if result.note:
        return result.note
    if result.status == "failed":
        return next(iter((result.error or "").strip().splitlines()), "")
    return ""


def format_results(results: list[CheckResult]) -> str:
    """An aligned table, one line per module, and a hint when a module was refused."""
    rows = [("MODULE", "STATUS", "DETAIL")]
    rows += [(r.module, _label(r), _detail(r)) for r in results]
    first = max(len(row[0]) for row in rows)
    second = max(len(row[1]) for row in rows)
    lines = [f"{a:<{first}}  {b:<{second}}  {c}".rstrip() for a, b, c in rows]
    if any(r.status == "refused" or r.runs == "process" for r in results):
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
        from .._wire import _interp
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
        aiointerp_path=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
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
