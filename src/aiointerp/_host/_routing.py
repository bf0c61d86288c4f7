"""Where a pool runs each function: what it tries first, and what it learned.

A pool sends every function, pickled by reference, to a worker of its kind. When a
module refuses subinterpreters while an interpreter *loads* a function (the
function's own module imports FastAPI, which imports ``pydantic_core``), the worker
says so instead of running anything (:data:`aiointerp._wire._protocol.REFUSED`), and
:meth:`Router.after_refusal` picks the next way, cheapest first:

1. an interpreter, the function pickled by reference (the first try);
2. an interpreter, the function pickled **by value**
   (:func:`aiointerp._host._byvalue.pickle_by_value`);
3. a process (``kind="auto"`` only).

What worked is remembered per function, so later calls go straight there. Only
failures to load are retried, so no code ever runs twice: a refusal raised while the
code runs (an import whose name is computed) reaches the caller, and under
``kind="auto"`` sends that function's later calls to a process.

Under ``kind="auto"``, :meth:`Router.foresee` decides a function's first call from
the modules its code imports (:mod:`aiointerp._host._imports`) and what they do in
an isolated interpreter (:mod:`aiointerp._host._probes`).
"""

from __future__ import annotations

import functools
import logging
import types
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, NamedTuple

from .._wire import _encoding
from .._wire._protocol import CALL, FUNCTION
from ._byvalue import pickle_by_value, target_of

if TYPE_CHECKING:
    import anyio
    import anyio.abc

    from ._probes import ModuleProbes

__all__ = ["Route", "Router"]

logger = logging.getLogger("aiointerp")

#: functions whose route a pool remembers (the oldest is forgotten first)
_MEMORY: Final = 1024
#: pickles by value a pool keeps (one per distinct call pickle)
_BLOBS: Final = 64
#: call pickles whose route a ``kind="auto"`` pool looks up by the pickle alone
_KNOWN_BLOBS: Final = 256
#: pickles longer than this are not remembered so (a partial of data, say)
_KNOWN_BLOB_SIZE: Final = 512
#: callables known by their pickle alone (lambdas, callable objects) whose pickle is
#: longer than this are looked at again at each call, not remembered
_FORESEEN_BLOB_SIZE: Final = 4096


class Route(NamedTuple):
    """How to send a function: to which kind of worker, pickled how."""

    kind: str
    #: the function pickled by value, or ``None``: by reference (the call's own blob)
    by_value: bytes | None = None


class Router:
    """The routes of one pool's functions (see the module documentation).

    A route is learned per *function* (its module and qualified name, under any
    partial, map batch or ``@offload``): ``functools.partial(f, data)`` calls of many
    ``data`` share ``f``'s. A function's pickle by value is made once per distinct
    call pickle (kept for the last few).

    Under ``kind="auto"`` a function is looked at once before its first call
    (:meth:`foresee`); later calls find its route by its call pickle (a plain
    function's is the same at every call), else by the function.
    """

    def __init__(self, kind: str) -> None:
        #: the pool's kind: ``"interpreter"``, ``"process"`` or ``"auto"``
        self.kind = kind
        #: where a function is sent first
        self.first = Route("process" if kind == "process" else "interpreter")
        #: function -> (kind, by value)
        self._learned: OrderedDict[object, tuple[str, bool]] = OrderedDict()
        #: a call's pickle by reference -> its pickle by value
        self._by_value: OrderedDict[bytes, bytes] = OrderedDict()
        #: kind="auto": the functions looked at that go where the first route says
        self._foreseen: OrderedDict[object, None] = OrderedDict()
        #: kind="auto": functions being looked at, and the event set when done
        self._foreseeing: dict[object, anyio.Event] = {}
        #: kind="auto": the route of a call pickle (or of the function of a
        #: partial), for a function looked at; emptied when a route is learned
        self._known: dict[object, Route] = {}
        self._probes: ModuleProbes | None = None

    def route(self, func: object, blob: bytes) -> Route | None:
        """Where to send *func*, whose pickle by reference is *blob*.

        ``None`` under ``kind="auto"`` for a function not looked at yet: then
        :meth:`foresee` says where.
        """
        if self.kind != "auto":
            if not self._learned:  # the common case: nothing was ever refused
                return self.first
            return self._route_of(_key(func, blob), func, blob)
        known = self._known
        route = known.get(blob)
        if route is not None:
            return route
        # a partial of data, a new pickle each call: by its function
        inner = func.func if type(func) is functools.partial else None
        if type(inner) is types.FunctionType:
            route = known.get(inner)
            if route is not None:
                return route
        key = _key(func, blob)
        if key not in self._learned and key not in self._foreseen:
            return None
        route = self._route_of(key, func, blob)
        if len(known) >= _KNOWN_BLOBS:
            del known[next(iter(known))]
        if inner is not None and route.by_value is None:
            known[inner] = route  # (by value: a pickle of this partial, data too)
        elif len(blob) <= _KNOWN_BLOB_SIZE:  # the same pickle: the same callable
            known[blob] = route
        return route

    async def foresee(
        self, func: object, blob: bytes, tg: anyio.abc.TaskGroup | None
    ) -> Route:
        """Where to send a first call of *func* under ``kind="auto"``.

        A process when its code imports a module that refuses subinterpreters
        (probed in tasks of *tg*, the pool's; none when it is ``None``), learned
        before its first call; else the first route. Concurrent first calls of one
        function wait for one look.
        """
        import anyio

        from ._imports import imports_of

        key = _key(func, blob)
        while (event := self._foreseeing.get(key)) is not None:
            await event.wait()  # another caller looks at it
        route = self.route(func, blob)
        if route is not None:  # learned meanwhile
            return route
        event = self._foreseeing[key] = anyio.Event()
        refused = None
        try:
            try:
                imports = imports_of(func)
            except Exception:  # a defect of imports_of, which promises not to raise
                logger.debug("could not read the imports of %r", func, exc_info=True)
                imports = ()
            if imports:
                if self._probes is None:
                    from ._probes import ModuleProbes

                    self._probes = ModuleProbes()
                refused = await self._probes.refused(imports, tg)
        finally:
            del self._foreseeing[key]
            event.set()
        # a callable known by a big pickle of its own (a lambda with its data): not
        # remembered, its next call reads its code again (cached per code object)
        remember = not isinstance(key, bytes) or len(key) <= _FORESEEN_BLOB_SIZE
        if refused is None:
            if remember:
                self._foreseen[key] = None
                if len(self._foreseen) > _MEMORY:
                    self._foreseen.popitem(last=False)
            return self.first
        logger.debug(
            "%s imports %s, which refuses subinterpreters: it runs in a process",
            _encoding.describe(func),
            refused,
        )
        if remember:
            self._learn(key, "process", False)
        return Route("process")

    def _route_of(self, key: object, func: object, blob: bytes) -> Route:
        learned = self._learned.get(key)
        if learned is None:
            return self.first
        kind, value = learned
        if not value:
            return Route(kind)
        by_value = self._value_of(func, blob)
        return Route(kind, by_value) if by_value is not None else self.first

    def after_refusal(
        self, func: object, blob: bytes, stage: str, route: Route
    ) -> Route | None:
        """A module refused subinterpreters at *stage* of a call sent by *route*.

        Returns where to send the call now, or ``None``: the refusal is the caller's.
        """
        if self.kind == "process":  # processes do not refuse: never rerouted
            return None
        key = _key(func, blob)
        if stage == CALL:  # the code ran: never again in an interpreter, no retry
            if self.kind == "auto":
                self._learn(key, "process", False)
            return None
        if stage == FUNCTION and route.by_value is None:
            by_value = self._value_of(func, blob)
            if by_value is not None:
                self._learn(key, "interpreter", True)
                return Route("interpreter", by_value)
        if self.kind == "auto":
            self._learn(key, "process", False)
            return Route("process")
        return None

    def _value_of(self, func: object, blob: bytes) -> bytes | None:
        by_value = self._by_value.get(blob)
        if by_value is None:
            by_value = pickle_by_value(func)
            if by_value is not None:
                self._by_value[blob] = by_value
                if len(self._by_value) > _BLOBS:
                    self._by_value.popitem(last=False)
        return by_value

    def _learn(self, key: object, kind: str, value: bool) -> None:
        self._known.clear()  # routes of call pickles: some may have changed
        self._learned[key] = (kind, value)
        if len(self._learned) > _MEMORY:
            self._learned.popitem(last=False)


def _key(func: object, blob: bytes) -> object:
    """What a route is learned for: the function under *func*, else its pickle."""
    target = target_of(func)
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        return module, qualname
    return blob  # a lambda, a local function, a callable object...
