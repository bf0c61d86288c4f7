"""What an import does in a fresh isolated interpreter: the probe behind checks.

:func:`run_probe` runs one probe (a module, a package's submodules, the items of a
``from`` import, a function, a function pickled by value) in an interpreter created
as the pool's workers are (:func:`aiointerp._wire._interp.create`), and returns its
raw verdict, a tuple of shareable values. :mod:`aiointerp._host._checks` makes
:class:`~aiointerp._host._checks.CheckResult` of them.
"""

from __future__ import annotations

import sys
from typing import Any, Final

__all__ = ["run_probe"]

#: Submodules never imported by the walk (nor descended into): programs and tests.
_SKIPPED: Final = ("__main__", "test", "tests", "testing", "_tests", "conftest")

#: Run inside the interpreter; stdlib and :mod:`aiointerp._wire` only (the pool's
#: workers import that too). The ImportError of a refusing extension carries no
#: ``name`` and CPython's message may name only the last part (``_core`` for
#: ``msgspec._core``), so the extension loader is wrapped to record the full name of
#: every extension whose creation raised. :func:`run_probe` appends the call that
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


def run_probe(what: str, call: str) -> tuple[Any, ...]:
    """Run the probe code and *call* in a fresh interpreter; return what *call* put.

    The interpreter gets this process's ``sys.path``, runs this one probe and is
    destroyed. Blocking: creating it takes about 10 ms, the probe what it takes.

    :param what: what is checked, for the error message
    :param call: a call of one of the probe's functions, as Python source:
        ``probe_module(name, limit, budget)``, ``probe_import(name, fromlist)``,
        ``probe_function(name, attribute)`` or ``probe_blob(blob)``
    :raises RuntimeError: the probe itself raised in the interpreter
    :raises ImportError: this Python has no subinterpreters
    """
    # deferred: _interp raises ImportError on a Python without subinterpreters,
    # which the caller reports (python -m aiointerp check exits 1 with it)
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
