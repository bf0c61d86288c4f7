"""Raising :class:`~aiointerp.worker.Interrupted` in a running call so that its cleanup
runs (inside each worker; stdlib only).

:class:`Interrupter` raises it in one thread (the worker loop's), at most once per job,
at a point of the user's code where its ``except``, ``finally`` and ``__exit__`` run,
on every supported Python. Raised where it cannot propagate (a ``__del__`` method, a
weakref callback), it is raised again at the next such point rather than lost.
"""

from __future__ import annotations

import sys
from _thread import get_ident

try:
    import ctypes
except AttributeError:  # seen once on 3.15.2, starting workers in
    # parallel: ctypes/__init__.py failed defining c_ubyte; a second import succeeds
    sys.modules.pop("ctypes", None)
    import ctypes

from .._wire._errors import Interrupted
from . import _job

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType
    from typing import Any, Final

__all__ = [
    "NO_POINT_LIMIT",
    "Interrupter",
    "clear_async_exc",
    "raise_points",
]

# Why not PyThreadState_SetAsyncExc alone: it raises at the next "eval breaker" check
# of the target thread, and on CPython 3.13 (3.13.0 to at least 3.13.18,
# cpython#139622) an exception raised at the check that follows a call of a C
# function is unwound from the wrong position: the except/finally/__exit__ of the
# frame it lands in are skipped (`while time.monotonic() < end: ...` lost its
# finally in most interrupts).
#
# So the code raises it itself, at an instruction whose position is exact (PEP 669,
# per interpreter): on a cancel the watchdog enables the INSTRUCTION event of a free
# sys.monitoring tool; the callback ignores other threads and aiointerp's own frames
# and raises before the next *raise point* of the user's code (raise_points()).
# Raised there, handlers ran in every probe on 3.13.0, 3.13.18, 3.14 and 3.15;
# raised at a NOP that opens a `try` they were skipped, even on 3.14, and at
# JUMP_BACKWARD on 3.13. The events are turned off before the exception propagates,
# so the cleanup runs at full speed and is never interrupted a second time.
#
# A loop without any raise point (`while True: pass`, `try: pass` in a loop) never
# reaches one: after NO_POINT_LIMIT instructions without one the callback raises
# before the loop's JUMP_BACKWARD instead (handlers ran every time there: it is
# unsafe only after a C call, on 3.13, and a loop that calls anything has raise
# points). Having the watchdog set the async exception instead failed in a third of
# the interrupts of the `try: pass` loop on 3.13, and took a switch interval longer.
#
# One mechanism on every Python: the same code path is what the test matrix proves.
# If no tool id is free (the user's code monitors with all six), the async exception
# is used directly.
#
# Raised inside __del__ or a weakref callback (importlib uses them), the exception
# cannot propagate: CPython reports it to sys.unraisablehook and carries on. The
# interrupter's hook recognises its own exception there and arms the events again.

#: instructions of user code without a raise point before a backward jump will do
NO_POINT_LIMIT: Final = 100
#: tool ids to try, the unassigned ones first (0 debugger, 1 coverage, 2 profiler,
#: 5 optimizer by convention); a tool in use is never taken
_TOOL_IDS: Final = (4, 3, 5, 2, 1, 0)
_TOOL_NAME: Final = "aiointerp-interrupt"
#: besides LOAD_* and STORE_FAST*: what runs right after a C call returns
_ALSO_RAISE_AT: Final = frozenset(
    {"POP_TOP", "CALL", "CALL_KW", "BINARY_OP", "COMPARE_OP"}
    | {"RETURN_VALUE", "RETURN_CONST"}
)

# ctypes.pythonapi is a PyDLL: these run with the GIL held, as the C API requires.
_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def clear_async_exc(thread_id: int) -> None:
    """Drop an async exception set for *thread_id* that has not fired yet."""
    _clear_async_exc(thread_id, None)


def raise_points() -> tuple[tuple[int, ...], int]:
    """Opcodes before which the exception is raised: loads, stores, calls, returns;
    and ``JUMP_BACKWARD``, for loops that have none of those.

    Computed by the host and handed to each worker at start: importing :mod:`opcode`
    in a fresh interpreter would cost every cancel milliseconds.
    """
    import opcode

    points = sorted(
        code
        for name, code in opcode.opmap.items()
        if name.startswith(("LOAD_", "STORE_FAST")) or name in _ALSO_RAISE_AT
    )
    return tuple(points), opcode.opmap["JUMP_BACKWARD"]


class Interrupter:
    """Raises :class:`Interrupted` in one thread (the worker loop's), once per job.

    :meth:`start` runs in the watchdog thread with the job state's
    ``in_flight`` raised; :meth:`stop` (the job ended) and :meth:`settle` (the code
    raised :class:`Interrupted` itself) run in the target thread and first wait for
    ``in_flight`` to drop, so the two never overlap (:mod:`aiointerp._inside._loop`). The
    callback runs in whichever thread executes instrumented code and acts only in
    the target's.
    """

    def __init__(
        self,
        target: int,
        state: _job._JobState,
        points: tuple[tuple[int, ...], int],
        own_files: frozenset[str],
    ) -> None:
        self.target = target
        self.state = state
        self.points = frozenset(points[0])  # from raise_points(), by the host
        self.jump_backward = points[1]
        self.tool: int | None = None  # the sys.monitoring tool id while claimed
        self.armed = False  # the events are on: the callback may raise
        self.fired = False  # Interrupted was raised (or set) for this job
        self.job_id = 0
        self.no_point = 0
        #: files of the worker loop: an interrupt never lands in their frames
        self.own = own_files
        self.next_hook: Callable[[Any], object] | None = None

    # -- watchdog thread

    def start(self, job_id: int) -> None:
        """Arrange for :class:`Interrupted` to be raised in the target thread."""
        self.job_id = job_id
        self.fired = False
        tool = self._claim_tool()
        if tool is None:
            self._inject()
            return
        if self.next_hook is None:  # the first cancel this interpreter sees
            self.next_hook = sys.unraisablehook
            sys.unraisablehook = self._on_unraisable
        self.tool = tool
        event = sys.monitoring.events.INSTRUCTION
        sys.monitoring.register_callback(tool, event, self._on_instruction)
        self._arm(tool)

    def _arm(self, tool: int) -> None:
        """Turn the events on: the callback raises at the next raise point."""
        self.no_point = 0
        self.armed = True
        # last: the callback may run from here
        sys.monitoring.set_events(tool, sys.monitoring.events.INSTRUCTION)

    def _fire(self) -> None:
        """Record that :class:`Interrupted` is raised for this job."""
        self.fired = True
        self.state.injected = True

    def _inject(self) -> None:
        self._fire()
        _set_async_exc(self.target, Interrupted)

    # -- target thread

    def settle(self) -> None:
        """The code raises :class:`Interrupted` itself: no interrupt may follow.

        The code stops at a point of its choosing, so its interpreter may be reused,
        unless an interrupt was raised before (``state.injected`` stays as it is).
        """
        state = self.state
        self.fired = True
        while state.in_flight:  # an interrupt being arranged right now...
            pass
        self._disarm()  # ...is undone
        clear_async_exc(self.target)

    def stop(self) -> None:
        """The job ended: turn the events off, give the tool id back (idempotent)."""
        self._disarm()
        tool = self.tool
        if tool is None:
            return
        self.tool = None
        monitoring = sys.monitoring
        monitoring.register_callback(tool, monitoring.events.INSTRUCTION, None)
        monitoring.free_tool_id(tool)

    def _disarm(self) -> None:
        self.armed = False
        if self.tool is not None:
            sys.monitoring.set_events(self.tool, 0)

    def _on_unraisable(self, unraisable: Any) -> None:
        """Our exception was swallowed (``__del__``, a weakref callback): re-arm."""
        if (
            unraisable.exc_type is Interrupted
            and self.fired
            and self.tool is not None
            and self.state.job_id == self.job_id
            and get_ident() == self.target
        ):
            self.fired = False
            self._arm(self.tool)
            return
        assert self.next_hook is not None
        self.next_hook(unraisable)

    def _claim_tool(self) -> int | None:
        monitoring = sys.monitoring
        for tool in _TOOL_IDS:
            if monitoring.get_tool(tool) is None:
                try:
                    monitoring.use_tool_id(tool, _TOOL_NAME)
                except ValueError:  # taken meanwhile, by another thread
                    continue
                return tool
        return None

    def _on_instruction(self, code: CodeType, offset: int) -> Any:
        if get_ident() != self.target or code.co_filename in self.own:
            return None
        if not self.armed or self.fired or self.state.job_id != self.job_id:
            return None  # over: the loop turns the events off
        opcode = code.co_code[offset]
        if opcode not in self.points:
            self.no_point += 1
            if self.no_point < NO_POINT_LIMIT or opcode != self.jump_backward:
                return None
        self._fire()
        self._disarm()
        raise Interrupted  # no message: as the async exception, a class
