"""Which modules load in an isolated interpreter: probed once per pool (``kind="auto"``).

Before a function's first call, a ``kind="auto"`` pool asks :class:`ModuleProbes`
whether one of the modules its code imports refuses subinterpreters
(:meth:`aiointerp._host._routing.Router.foresee`). Each import not known yet is probed once per
pool: :func:`aiointerp._host._checks.check_import` imports it in a fresh isolated
interpreter, as ``python -m aiointerp check`` does, on a thread (never on the event
loop), at most :data:`PROBES` at a time, in a task of the pool (a cancelled caller
stops waiting; the probe goes on, and its verdict serves the next callers). Callers
that need a probe already running wait for its verdict.

Known without a probe:

* the standard library, but for the modules that refuse isolated interpreters or
  import one that does (:data:`STDLIB_PROBED`, measured on CPython 3.13.0, 3.14.10
  and 3.15.2: every other module of :data:`sys.stdlib_module_names` loads);
* aiointerp itself;
* what an earlier probe of the same pool found.

A refusal routes the function to a process. A module that is not installed, or
whose import fails for another reason, decides nothing: the call goes where it would
have gone, and reports its own error there.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import Final

import anyio
import anyio.abc
import anyio.to_thread

from ._checks import Status, check_import
from ._imports import Import

__all__ = ["PROBES", "PROBE_WAIT", "STDLIB_PROBED", "ModuleProbes"]

logger = logging.getLogger("aiointerp")

#: Top-level modules of the standard library that are probed all the same: they
#: refuse isolated interpreters (``readline``, ``_curses``, ``_tkinter``,
#: ``faulthandler``, ``_tracemalloc``, ``_suggestions``), import one that does, or
#: are packages of such modules (``idlelib``, ``turtledemo``: tkinter programs).
STDLIB_PROBED: Final = frozenset(
    {
        "_curses",
        "_curses_panel",
        "_suggestions",
        "_tkinter",
        "_tracemalloc",
        "curses",
        "faulthandler",
        "idlelib",
        "readline",
        "tkinter",
        "tracemalloc",
        "turtle",
        "turtledemo",
    }
)
#: probes of one pool running at once (each imports a module in an interpreter)
PROBES: Final = 2
#: seconds a caller waits for a probe (a module whose import hangs) before its call
#: goes on without that verdict
PROBE_WAIT: Final = 30.0


class ModuleProbes:
    """The modules of one pool found to load, or to refuse, in isolated interpreters."""

    def __init__(self) -> None:
        #: module -> what importing it did (:attr:`aiointerp._host._checks.CheckResult.status`)
        self._verdicts: dict[str, Status] = {}
        #: probes running, and the event each sets when it ends
        self._running: dict[Import, anyio.Event] = {}
        self._limiter: anyio.CapacityLimiter | None = None

    async def refused(
        self, imports: Sequence[Import], tg: anyio.abc.TaskGroup | None
    ) -> str | None:
        """The first module of *imports* found to refuse subinterpreters, or ``None``.

        Probes the imports not known yet, in tasks of *tg* (the pool's); none when
        *tg* is ``None`` (the pool is closing).
        """
        waiting: list[tuple[Import, anyio.Event]] = []
        for item in imports:
            known = self._known(item)
            if known:  # a module name: it refuses
                return known
            if known is None and tg is not None:
                event = self._running.get(item)
                if event is None:
                    event = self._running[item] = anyio.Event()
                    tg.start_soon(self._probe, item, event)
                waiting.append((item, event))
        with anyio.move_on_after(PROBE_WAIT):  # for all of them together
            for item, event in waiting:
                await event.wait()
                if known := self._known(item):
                    return known
        for item, _ in waiting:  # those that ended after the wait
            if known := self._known(item):
                return known
        return None

    def _known(self, item: Import) -> str | None:
        """The module of *item* that refuses; ``""``: none; ``None``: not known yet."""
        module = item.module
        if _known_to_load(module):  # and so do its submodules
            return ""
        verdicts = self._verdicts
        status = verdicts.get(module)
        if status != "loads":  # not known, refused, or the import fails anyway
            return module if status == "refused" else None if status is None else ""
        unknown = False
        for name in item.fromlist:  # in order: those after a refused one are unknown
            sub = f"{module}.{name}"
            status = verdicts.get(sub)
            if status == "refused":
                return sub
            unknown = unknown or status is None
        return None if unknown else ""

    async def _probe(self, item: Import, event: anyio.Event) -> None:
        """Probe *item* on a thread; record what each of its modules did."""
        try:
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(PROBES)
            start = time.perf_counter()
            try:
                # abandoned if the pool closes: an import that hangs must not hold
                # up aclose() (the probe's interpreter is destroyed when it ends)
                results = await anyio.to_thread.run_sync(
                    check_import,
                    item.module,
                    item.fromlist,
                    limiter=self._limiter,
                    abandon_on_cancel=True,
                )
            except Exception as exc:  # the probe itself could not run: no verdict
                self._verdicts.setdefault(item.module, "failed")
                logger.debug(
                    "could not probe %s in an interpreter: %s: %s",
                    item.module,
                    type(exc).__name__,
                    exc,
                )
                return
            seconds = time.perf_counter() - start
            for result in results:
                self._verdicts[result.module] = result.status
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "probed %s in an interpreter: %s%s (%.1f ms)",
                        result.module,
                        result.status,
                        f" by {result.extension}" if result.extension else "",
                        seconds * 1000,
                        extra={
                            "event": "module_probed",
                            "worker_kind": None,
                            "worker_id": None,
                            "probed_module": result.module,
                            "status": result.status,
                            "refused_module": result.extension,
                            "seconds": seconds,
                        },
                    )
        finally:
            del self._running[item]
            event.set()


def _known_to_load(module: str) -> bool:
    """Whether *module* loads in isolated interpreters, known without a probe."""
    top = module.partition(".")[0]
    if top == "aiointerp":
        return True
    return top in sys.stdlib_module_names and top not in STDLIB_PROBED
