"""The state of the call a worker runs, and the worker-side API over it.

Public as :mod:`aiointerp.worker`; the worker loop sets :data:`_state`.

A worker is an interpreter or a process, as the pool's ``kind`` says; these work the
same in both. Stdlib only, cheap to import inside a worker. Outside a worker (plain
host code) they are harmless: :func:`checkpoint` does nothing, :func:`cancelled` is
``False`` and :func:`deadline` is ``None``, so the same function runs both ways.
"""

from __future__ import annotations

import time

from .._wire._errors import Interrupted

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["cancelled", "checkpoint", "deadline"]


class _JobState:
    """Shared by the worker loop and its watchdog thread (inside one worker)."""

    __slots__ = (
        "cancel_requested",
        "deadline",
        "early",
        "in_flight",
        "injected",
        "job_id",
        "settle",
    )

    def __init__(self) -> None:
        self.job_id = 0
        #: the watchdog is between reading job_id and injecting (written by it only)
        self.in_flight = False
        #: the last job id whose cancel arrived before the job was armed
        self.early = 0
        self.deadline: float | None = None
        self.cancel_requested = False
        self.injected = False
        #: called before checkpoint() raises: no interrupt may follow it
        self.settle: Callable[[], None] | None = None


#: Set by the worker loop when this module is imported inside a worker.
_state: _JobState | None = None


def cancelled() -> bool:
    """Return ``True`` if the current call was cancelled or is past its deadline.

    Always ``False`` outside a worker.
    """
    state = _state
    if state is None or not state.job_id:
        return False
    if state.cancel_requested:
        return True
    return state.deadline is not None and time.monotonic() >= state.deadline


def deadline() -> float | None:
    """Return the current call's deadline on the :func:`time.monotonic` clock.

    ``None`` when the call has no ``timeout=`` or outside a worker. A deadline of an
    enclosing cancel scope of the caller (``anyio.fail_after`` ...) is not known here:
    such cancellations arrive as an interrupt instead.
    """
    state = _state
    if state is None or not state.job_id:
        return None
    return state.deadline


def checkpoint() -> None:
    """Raise :class:`Interrupted` if the current call was cancelled or timed out.

    Pure-Python code is interrupted without it; call it in loops that spend their
    time in C functions (which hold off the injected interrupt until they return)
    or that must stop at a known point. Does nothing outside a worker.
    """
    if cancelled():
        state = _state
        if state is not None and state.settle is not None:
            state.cancel_requested = True  # the watchdog starts no interrupt now
            state.settle()  # and undoes one it is starting
        raise Interrupted("the call was cancelled or timed out")
