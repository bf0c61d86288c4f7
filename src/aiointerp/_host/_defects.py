"""Known CPython defects that affect subinterpreters, by version; the warning they earn.

One table, read by ``python -m aiointerp info`` and by the pool, which warns once
per process when it starts on a Python with a defect that can kill the process.
Every entry was measured on these machines unless it says otherwise.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

__all__ = [
    "KNOWN_DEFECTS",
    "Defect",
    "defects_of",
    "free_threaded_refusal",
    "refuse_free_threaded",
    "sampling_may_crash",
    "warn_once",
]


@dataclass(frozen=True, slots=True)
class Defect:
    """A defect of the CPython releases *first* to *last* (inclusive) of one series."""

    first: tuple[int, int, int]
    last: (
        tuple[int, int, int] | None
    )  # None: no release of the series known here fixes it
    summary: str
    impact: str
    reference: str
    #: the pool warns at start: the defect can abort the whole process
    warn: bool = False

    def affects(self, version: tuple[int, int, int]) -> bool:
        if version[:2] != self.first[:2] or version < self.first:
            return False
        return self.last is None or version <= self.last


KNOWN_DEFECTS: tuple[Defect, ...] = (
    Defect(
        first=(3, 13, 0),
        last=(3, 13, 0),
        summary=(
            "sys._current_frames() called by any thread while an interpreter runs "
            "code aborts the process (free(): invalid pointer); called inside an "
            "interpreter, it crashes too"
        ),
        impact=(
            "every sampling profiler calls it: Sentry and Datadog profiling, "
            "pyinstrument, py-spy's in-process mode, Dask's worker profiler; "
            "3.13.18 and 3.14 survive it (3.13.1 to 3.13.17 were not tested)"
        ),
        reference="docs/limitations.md#crashes-on-cpython-3130",
        warn=True,
    ),
    Defect(
        first=(3, 13, 0),
        last=None,
        summary=(
            "each interpreter destroyed leaks memory (3.13.0 and 3.13.18): about "
            "1.7 MiB bare, about 4 MiB for a worker that imported aiointerp's code"
        ),
        impact=(
            "aiointerp keeps interpreters warm, but retires interrupted ones and "
            "those recycled by idle_timeout or max_tasks_per_worker: each costs "
            "that much memory for the life of the process; 3.14 does not leak"
        ),
        reference="docs/limitations.md#memory",
    ),
    Defect(
        first=(3, 13, 0),
        last=None,
        summary=(
            "an exception set with PyThreadState_SetAsyncExc can skip the except/"
            "finally blocks of the frame it lands in (cpython#139622)"
        ),
        impact=(
            "aiointerp raises its interrupts through sys.monitoring instead, so "
            "cleanup runs; other code that uses async exceptions is affected"
        ),
        reference="https://github.com/python/cpython/issues/139622",
    ),
)


#: The first release of each series seen to survive sys._current_frames() called
#: beside running interpreters (tests/host/test_profilers.py); 3.13.0 crashed, releases
#: in between were not tested, and 3.14.7 and 3.15.0rc1 were reported to crash when
#: it is called inside an interpreter.
_SAMPLING_SURVIVED_FROM: dict[tuple[int, int], tuple[int, int, int]] = {
    (3, 13): (3, 13, 18),
    (3, 14): (3, 14, 10),
    (3, 15): (3, 15, 2),
}


def sampling_verified_safe() -> str:
    """The releases verified to survive a sampling profiler, for messages."""
    names = [".".join(map(str, v)) for v in _SAMPLING_SURVIVED_FROM.values()]
    return ", ".join(names[:-1]) + " and " + names[-1]


def sampling_may_crash(version: tuple[int, int, int] | None = None) -> bool:
    """May a sampling profiler (``sys._current_frames()``) abort this Python?

    True for 3.13.0, which does, and for the releases not verified to survive it:
    where a crash costs the process, a profiler is turned off rather than trusted.
    """
    if version is None:
        version = sys.version_info[:3]
    survived_from = _SAMPLING_SURVIVED_FROM.get(version[:2])
    return survived_from is not None and version < survived_from


def defects_of(version: tuple[int, int, int] | None = None) -> list[Defect]:
    """The known defects of CPython *version* (default: this Python)."""
    if version is None:
        version = sys.version_info[:3]
    if sys.implementation.name != "cpython":  # the table is CPython's
        return []
    return [defect for defect in KNOWN_DEFECTS if defect.affects(version)]


_warned = False


def warn_once() -> None:
    """Warn (once per process) when this Python has a defect that can abort it."""
    global _warned
    if _warned:
        return
    _warned = True
    for defect in defects_of():
        if defect.warn:
            version = ".".join(map(str, sys.version_info[:3]))
            warnings.warn(
                f"CPython {version} has a defect that aborts the process with "
                f"subinterpreters: {defect.summary}; {defect.impact}. Use the newest "
                f"3.13 release. See {defect.reference}",
                RuntimeWarning,
                stacklevel=4,
            )


def _free_threaded_build() -> bool:
    """Is this a free-threaded build (``python3.13t``), whatever the GIL's state now?"""
    abiflags = getattr(sys, "abiflags", None)
    if abiflags is not None:  # POSIX: "t" marks the build (PEP 703); no sysconfig cost
        return "t" in abiflags
    import sysconfig  # Windows: no abiflags

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def free_threaded_refusal() -> str | None:
    """Why pools refuse this Python, if it is a free-threaded build; else ``None``.

    The watchdog that interrupts a cancelled call inside its interpreter hands the
    job over to the interpreter's running code without a lock (a lock held by code
    being interrupted might never be released): it relies on the GIL to order those
    steps (see :mod:`aiointerp._inside._loop`). Without the GIL that ordering is not
    proven. A free-threaded build is refused even while its GIL is on
    (``PYTHON_GIL=1``): worker interpreters may run without it.
    """
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    if gil_enabled and not _free_threaded_build():
        return None
    state = "enabled for now" if gil_enabled else "disabled"
    return (
        f"aiointerp does not run on free-threaded CPython builds (this is one, its GIL "
        f"{state}): the watchdog that interrupts a cancelled call inside its "
        "interpreter hands over to the running code without a lock and relies on the "
        "GIL to order those steps, which is not proven without it. Use a default "
        "(GIL) build of CPython, e.g. python3.13 rather than python3.13t"
    )


def refuse_free_threaded() -> None:
    """Raise :class:`RuntimeError` on a free-threaded build (see :func:`free_threaded_refusal`).

    Called when a pool is created.

    :raises RuntimeError: this Python is a free-threaded build
    """
    refusal = free_threaded_refusal()
    if refusal is not None:
        raise RuntimeError(refusal)
