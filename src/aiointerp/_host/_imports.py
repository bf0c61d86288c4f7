"""Which modules a function's code imports, read from its bytecode (``kind="auto"``).

A ``kind="auto"`` pool reads them before a function's first call, so that a function
whose body imports a module that refuses subinterpreters (``import numpy`` in a web
handler) runs in a process from its first call instead of failing it
(:meth:`aiointerp._host._routing.Router.foresee`).

What is read: every ``IMPORT_NAME`` instruction of the function's code object and of
the code objects nested in it (inner functions, lambdas, comprehensions, class
bodies), ``from x import y`` with its names, relative imports resolved against the
function's package; under a :func:`functools.partial`, a map batch, an ``@offload``
reference, a bound method, a ``__wrapped__`` chain, a class (its ``__init__`` and
``__new__``) and a callable object (its class's ``__call__``). Then, bounded by
:data:`HELPER_DEPTH` and :data:`HELPER_COUNT`, the same for the plain functions of
the same module that the code loads by global name (a handler calling a helper that
imports numpy).

What is not: imports whose name is computed (``importlib.import_module(name)``,
``__import__``), the code of other modules (what ``json.dumps`` imports), methods
called on objects, and whether an import is reached at all (an import in a branch
that never runs, or in a ``try`` whose ``except ImportError`` falls back, counts).

Host only; stdlib only. The reading of each code object is cached.
"""

from __future__ import annotations

import dis
import functools
import importlib.util
import types
from typing import Any, Final, NamedTuple

from .._inside._batch import Batch
from .._inside._offloaded import SyncRef

__all__ = ["HELPER_COUNT", "HELPER_DEPTH", "Import", "imports_of"]

#: how deep helpers are followed: the function's helpers (1), their helpers (2)...
HELPER_DEPTH: Final = 3
#: the most functions read per function (itself, what it wraps, helpers)
HELPER_COUNT: Final = 32
#: code objects whose reading is cached
_CACHED: Final = 4096
_IMPORT_OPCODE: Final = bytes([dis.opmap["IMPORT_NAME"]])
#: instructions that load a global by name (``LOAD_NAME`` in class bodies)
_GLOBALS: Final = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})


class Import(NamedTuple):
    """One import, resolved: ``from module import *fromlist``, or ``import module``."""

    module: str
    fromlist: tuple[str, ...] = ()


class _Read(NamedTuple):
    """What one code object (with those nested in it) says."""

    #: ``(level, name, fromlist)`` of each import, as the bytecode has them
    imports: tuple[tuple[int, str, tuple[str, ...]], ...]
    #: the names it uses as globals, attributes or imports (``co_names``)
    names: frozenset[str]


def imports_of(func: object) -> tuple[Import, ...]:
    """The imports that calling *func* may run, in the order they were found.

    Each at most once; the function's own module and its packages are left out (the
    worker loads those before the call). Never raises on a callable it cannot read:
    it finds nothing there.
    """
    found: dict[Import, None] = {}
    queue = [(function, 0) for function in _functions(func)]
    seen: set[int] = set()
    while queue and len(seen) < HELPER_COUNT:
        function, depth = queue.pop(0)
        if id(function) in seen:
            continue
        seen.add(id(function))
        namespace = function.__globals__
        read = _read(function.__code__)
        own = function.__module__
        for level, name, fromlist in read.imports:
            resolved = _resolve(level, name, namespace)
            if resolved is None:
                continue
            if _is_own(resolved, own):  # only what it imports from there counts
                if resolved == own and "__path__" not in namespace:
                    continue  # names of its own module (not a package)
                fromlist = tuple(
                    i for i in fromlist if not _is_own(f"{resolved}.{i}", own)
                )
                if not fromlist:
                    continue
            found.setdefault(Import(resolved, fromlist))
        if depth >= HELPER_DEPTH:
            continue
        helpers = [  # sorted: the names are a set
            (name, helper)
            for name in sorted(read.names)
            if isinstance(helper := namespace.get(name), types.FunctionType)
            and helper.__module__ == own
            and id(helper) not in seen
        ]
        if helpers:  # which of those names are loaded as globals (not attributes)
            loaded = _globals(function.__code__)
            for name, helper in helpers:
                if name in loaded:
                    queue.extend((inner, depth + 1) for inner in _functions(helper))
    return tuple(found)


def _functions(func: object) -> list[types.FunctionType]:
    """The Python functions that calling *func* runs first (what wraps, what is wrapped)."""
    functions: list[types.FunctionType] = []
    pending: list[object] = [func]
    for _ in range(16):  # a bound on chains of wrappers
        if not pending:
            break
        obj = pending.pop(0)
        if isinstance(obj, SyncRef):
            pending.append(obj._func)
        elif isinstance(obj, (functools.partial, Batch)):
            pending.append(obj.func)
        elif isinstance(obj, types.MethodType):
            pending.append(obj.__func__)
        elif isinstance(obj, types.FunctionType):
            functions.append(obj)
            wrapped = getattr(obj, "__wrapped__", None)  # functools.wraps
            if wrapped is not None:
                pending.append(wrapped)
        elif isinstance(obj, type):  # a class: what runs when it is called
            pending.extend(
                method
                for name in ("__new__", "__init__")
                if (method := _lookup(obj, name)) is not None
            )
        elif not isinstance(obj, types.BuiltinFunctionType):
            method = _lookup(type(obj), "__call__")  # a callable object
            if method is not None:
                pending.append(method)
    return functions


def _lookup(klass: type, name: str) -> types.FunctionType | None:
    """The Python function that *klass* has as *name* (as attribute lookup finds it)."""
    for base in klass.__mro__:
        attribute = vars(base).get(name)
        if attribute is None:
            continue
        if isinstance(attribute, (staticmethod, classmethod)):
            attribute = attribute.__func__
        return attribute if isinstance(attribute, types.FunctionType) else None
    return None


@functools.lru_cache(maxsize=_CACHED)
def _read(code: types.CodeType) -> _Read:
    """The imports and the names of *code* and of the code nested in it.

    Disassembles only the code objects that import (the bytecode is one opcode
    byte, one argument byte per unit: the opcode's byte among the even ones).
    """
    imports: list[tuple[int, str, tuple[str, ...]]] = []
    names: set[str] = set()
    for inner in _codes(code):
        names.update(inner.co_names)
        if _IMPORT_OPCODE not in inner.co_code[::2]:
            continue
        previous: list[Any] = [None, None]
        for instruction in dis.get_instructions(inner):
            if instruction.opname == "IMPORT_NAME":
                # the compiler pushes the level, then the names of a from-import
                level, fromlist = previous
                imports.append(
                    (
                        level if type(level) is int else 0,
                        instruction.argval,
                        tuple(fromlist) if type(fromlist) is tuple else (),
                    )
                )
            if instruction.opname != "EXTENDED_ARG":
                previous = [previous[1], instruction.argval]
    return _Read(tuple(imports), frozenset(names))


@functools.lru_cache(maxsize=_CACHED)
def _globals(code: types.CodeType) -> frozenset[str]:
    """The names that *code* and the code nested in it load as globals."""
    return frozenset(
        instruction.argval
        for inner in _codes(code)
        for instruction in dis.get_instructions(inner)
        if instruction.opname in _GLOBALS
    )


def _codes(code: types.CodeType) -> list[types.CodeType]:
    """*code* and every code object nested in it."""
    codes = [code]
    for inner in codes:  # grows as it goes
        codes.extend(c for c in inner.co_consts if isinstance(c, types.CodeType))
    return codes


def _resolve(level: int, name: str, namespace: dict[str, Any]) -> str | None:
    """The absolute name of an import in a module whose globals are *namespace*."""
    if level == 0:
        return name or None
    package = namespace.get("__package__")
    if package is None:  # as importlib computes it
        spec = namespace.get("__spec__")
        if spec is not None:
            package = spec.parent
        else:
            module = namespace.get("__name__", "")
            package = module if "__path__" in namespace else module.rpartition(".")[0]
    if not isinstance(package, str) or not package:
        return None  # a relative import outside a package fails where it runs
    try:
        return importlib.util.resolve_name("." * level + name, package)
    except (ImportError, ValueError):
        return None


def _is_own(module: str, own: str) -> bool:
    """Whether importing *module* loads nothing but *own* (the function's module)."""
    return own == module or own.startswith(module + ".")
