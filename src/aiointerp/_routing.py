"""Where a pool runs each function: what it tries first, and what it learned.

A pool of ``kind="interpreter"`` or ``"process"`` sends every function, pickled by
reference, to a worker of its kind. When a module refuses subinterpreters while an
interpreter *loads* a function (the function's own module imports FastAPI, which
imports ``pydantic_core``), the worker says so instead of running anything
(:data:`aiointerp._protocol.REFUSED`), and :meth:`Router.after_refusal` picks the
next way, cheapest first:

1. an interpreter, the function pickled by reference (the first try);
2. an interpreter, the function pickled **by value** (cloudpickle, when installed):
   its code and the globals it uses, without importing its module;
3. a process (``kind="auto"`` only).

What worked is remembered per function (by its pickle), so later calls go straight
there. Only failures to load are retried, so no code ever runs twice. A refusal
raised while the code runs (an import inside the function) reaches the caller; under
``kind="auto"``, later calls of that function go to a process.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any, Final, NamedTuple

from . import _exceptions, _transport
from ._protocol import ARGUMENTS, CALL, FUNCTION, INITIALIZER, PRELOAD

__all__ = ["Route", "Router", "by_value", "refusal_error"]

#: functions whose route a pool remembers (the oldest is forgotten first)
_MEMORY: Final = 1024


class Route(NamedTuple):
    """How to send a function: to which kind of worker, pickled how."""

    kind: str
    #: the function pickled by value, or ``None``: by reference (the call's own blob)
    by_value: bytes | None = None


class Router:
    """The routes of one pool's functions (see the module documentation)."""

    def __init__(self, kind: str) -> None:
        #: the pool's kind: ``"interpreter"``, ``"process"`` or ``"auto"``
        self.kind = kind
        #: where a function is sent first
        self.first = Route("process" if kind == "process" else "interpreter")
        self._learned: OrderedDict[bytes, Route] = OrderedDict()

    def route(self, key: bytes) -> Route:
        """Where to send the function whose by-reference pickle is *key*."""
        return self._learned.get(key, self.first)

    def after_refusal(
        self, key: bytes, func: object, stage: str, route: Route
    ) -> Route | None:
        """A module refused subinterpreters at *stage* of a call sent by *route*.

        Returns where to send the call now, or ``None``: the refusal is the caller's.
        """
        if self.kind == "process":  # pragma: no cover - processes do not refuse
            return None
        if stage == CALL:  # the code ran: never again in an interpreter, no retry
            if self.kind == "auto":
                self._learn(key, Route("process"))
            return None
        if stage == FUNCTION and route.by_value is None:
            blob = by_value(func)
            if blob is not None:
                return self._learn(key, Route("interpreter", blob))
        if self.kind == "auto":
            return self._learn(key, Route("process"))
        return None

    def _learn(self, key: bytes, route: Route) -> Route:
        self._learned[key] = route
        if len(self._learned) > _MEMORY:
            self._learned.popitem(last=False)
        return route


def _target(func: object) -> object:
    """The plain function under *func* (a partial, a map batch, an ``@offload``)."""
    from ._offload import _SyncRef

    for _ in range(8):
        if isinstance(func, _SyncRef):
            func = func._func
        inner = getattr(func, "func", None)  # functools.partial, _batch.Batch
        if inner is None or not callable(inner):
            return func
        func = inner
    return func


def by_value(func: object) -> bytes | None:
    """*func* pickled by value (its module's code not imported), or ``None``.

    ``None`` when cloudpickle is not installed, when *func* is not defined in a
    module (a builtin), or when it cannot be pickled so.
    """
    try:
        import cloudpickle  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    from ._offload import _SyncRef

    target = _target(func)
    module = sys.modules.get(getattr(target, "__module__", None) or "")
    if module is None or module.__name__ == "builtins":
        return None
    name = module.__name__
    # cloudpickle sends what __main__ defines by value of itself
    registered = (
        name == "__main__" or name in cloudpickle.list_registry_pickle_by_value()
    )
    try:
        if not registered:
            cloudpickle.register_pickle_by_value(module)
        # an @offload reference unwrapped: what it stands for, under the same name
        sent = target if isinstance(func, _SyncRef) else func
        return bytes(cloudpickle.dumps(sent, _transport._PROTOCOL))
    except Exception:
        return None
    finally:
        if not registered and name in cloudpickle.list_registry_pickle_by_value():
            cloudpickle.unregister_pickle_by_value(module)


def refusal_error(
    value: Any, text: str | None, func: object, route: Route, kind: str
) -> ImportError:
    """The error a caller gets for a refusal (a REFUSED outcome's value and text).

    An :class:`ImportError` whose message is aiointerp's explanation (which module
    refused, the imports that reached it, what to do), and whose ``__cause__`` is
    the ImportError raised inside the worker, rebuilt.
    """
    encoded, module, chain, stage = value
    label = _transport.describe(func)
    path = " → ".join((*chain, module))
    if stage == INITIALIZER:
        what = f"the pool's initializer imported {module}"
    elif stage == PRELOAD and chain:  # the chain starts with the module of preload
        what = f"preloading {chain[0]} imports {module}"
    elif stage == PRELOAD:
        what = f"the pool's preload imports {module}"
    elif stage == CALL:
        what = f"{label} imported {module} while it ran"
    elif stage == ARGUMENTS:
        what = f"loading the arguments of {label} imports {module}"
    else:
        what = f"loading {label} imports {module}"
        if route.by_value is not None:
            what += " (also when sent by value: the globals it uses import it)"
    lines = [f"{what}, which does not support subinterpreters (import chain: {path})."]
    if stage in (INITIALIZER, PRELOAD):
        lines.append(
            "Workers that must import it need InterpreterPool(kind='process')."
        )
    elif kind == "auto":
        lines.append("Later calls of it run in a process.")
    elif stage == FUNCTION and route.by_value is None:
        lines.append(
            "Run it in a process with InterpreterPool(kind='auto') or "
            "kind='process', or move the function into a module that does not "
            f"import {chain[1] if len(chain) > 1 else module}"
            + (
                "."
                if _has_cloudpickle()
                else ", or install cloudpickle (pip install cloudpickle) so that "
                "aiointerp sends it by value."
            )
        )
    else:
        lines.append(
            "Run it in a process with InterpreterPool(kind='auto') or "
            f"kind='process'; in an interpreter, it cannot import {module}."
        )
    error = ImportError(" ".join(lines), name=module)
    error.__cause__ = _exceptions.rebuild(encoded, text or "")
    return error


def _has_cloudpickle() -> bool:
    import importlib.util

    return importlib.util.find_spec("cloudpickle") is not None
