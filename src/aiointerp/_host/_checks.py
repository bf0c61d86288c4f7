"""Will a module or a function work in an interpreter? Checked in fresh isolated ones.

:func:`check_module` imports a module (and a package's submodules),
:func:`check_import` what one import statement imports, :func:`check_function` tells
how a pool runs a function; each returns a :class:`CheckResult`, whose
:attr:`~CheckResult.status` is:

* ``loads``: the import succeeded. Extension modules that refused to load while the
  import still succeeded (a package falling back to pure Python, as PyYAML does without
  ``yaml._yaml``) are listed in :attr:`CheckResult.fallbacks`;
* ``refused``: an extension module does not support isolated interpreters
  (:attr:`CheckResult.extension` names it, e.g. ``numpy._core._multiarray_umath``),
  or a package loads but some of its submodules are refused (``PIL``, whose
  ``PIL.Image`` needs ``PIL._imaging``: :attr:`CheckResult.submodules`);
* ``failed``: any other exception (:attr:`CheckResult.error`: its type and message);
* ``not_installed``: the module is not on the host's ``sys.path``.

Used by ``python -m aiointerp check`` and by ``kind="auto"`` pools
(:mod:`aiointerp._host._probes`); ``import aiointerp`` does not load it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from ._byvalue import pickle_by_value
from ._isolated import run_probe

__all__ = [
    "SHOWN",
    "SUBMODULE_LIMIT",
    "SUBMODULE_SECONDS",
    "CheckResult",
    "Runs",
    "Status",
    "Submodules",
    "check_function",
    "check_import",
    "check_module",
    "is_module_name",
    "is_target",
    "listed",
    "refused_count",
]

Status = Literal["loads", "refused", "failed", "not_installed"]
Runs = Literal["reference", "value", "process"]

#: Bounds of the walk through a package's submodules (per package checked).
SUBMODULE_LIMIT: Final = 300
SUBMODULE_SECONDS: Final = 15.0
#: the most submodule names a message lists (``check --json`` has all)
SHOWN: Final = 4


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
        """The walk as JSON-ready values (``refused`` becomes a list of objects)."""
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


def is_module_name(name: str) -> bool:
    """Whether *name* is an absolute dotted module name (``pkg.sub``)."""
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def is_target(text: str) -> bool:
    """Whether *text* names a module (``pkg.sub``) or a function (``pkg.sub:func``)."""
    module, colon, attribute = text.partition(":")
    return is_module_name(module) and (not colon or is_module_name(attribute))


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

    The interpreter is used for this one check (:func:`aiointerp._host._isolated.run_probe`).
    Whether the module exists is looked up in the host first without importing
    anything (:func:`importlib.util.find_spec` of its top-level package); a missing
    submodule is told apart inside the interpreter.

    A package that loads has its submodules imported too, in the same interpreter,
    breadth first, at most :data:`SUBMODULE_LIMIT` of them for at most
    :data:`SUBMODULE_SECONDS` (``__main__`` modules and test packages are skipped):
    ``import PIL`` loads, but ``PIL.Image`` needs the extension ``PIL._imaging``,
    which refuses. The package is then ``refused`` by that extension, unless the
    package fell back from it when it was imported (PyYAML without ``yaml._yaml``).

    Blocking: a module whose import never returns blocks this call; one whose import
    crashes the process (a segfault, ``os._exit``) ends it, as it would in a pool.

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
    status, extension, error, seconds, fallbacks, walked = run_probe(
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
        f"import {name} loads, but {refused_count(blocking, subs)}: "
        f"{listed([n for n, _ in blocking])}, refused by "
        f"{listed(list(dict.fromkeys(str(e) for _, e in blocking)))}"
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
    rows = run_probe(name, f"probe_import({name!r}, {fromlist!r})")
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


def refused_count(refused: Sequence[object], subs: Submodules) -> str:
    """``"2 of its 40 submodules are refused"``, for messages."""
    checked = f"{subs.checked}" if subs.complete else f"the first {subs.checked}"
    return f"{len(refused)} of its {checked} submodules are refused"


def check_function(target: str) -> CheckResult:
    """How a pool would run the function *target* (``"myapp.cpu:hash_pw"``).

    Its module is imported in a fresh isolated interpreter, the attribute looked up
    and pickled there as the host pickles a function (by reference), then loaded
    again. When that fails (a module refused by an extension, a module-level lambda)
    and cloudpickle is installed, the host imports the module itself, pickles the
    function *by value* as a pool does (:func:`aiointerp._host._byvalue.pickle_by_value`)
    and loads that in another fresh interpreter: what ``kind="auto"`` and
    ``kind="interpreter"`` do. See :attr:`CheckResult.runs` for
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
    status, extension, error, seconds, fallbacks, by_reference = run_probe(
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
    del cloudpickle  # it is there: pickle_by_value uses it
    try:
        blob = _by_value(name, attribute)
    except Exception as exc:  # the host cannot import or pickle it either
        error = f"{type(exc).__name__}: {exc}"
        return replace(
            result, status="failed", error=error, note=f"{why}; here: {error}"
        )
    loaded, refused_by, load_error, _, _ = run_probe(target, f"probe_blob({blob!r})")
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

    module = importlib.import_module(name)
    func = functools.reduce(getattr, attribute.split("."), module)
    blob = pickle_by_value(func)
    if blob is None:
        raise TypeError(f"{name}:{attribute} cannot be pickled by value")
    return blob


def listed(names: Sequence[str]) -> str:
    """The first :data:`SHOWN` of *names*, then how many more, for messages."""
    if len(names) <= SHOWN:
        return ", ".join(names)
    return f"{', '.join(names[:SHOWN])} and {len(names) - SHOWN} more"
