"""``python -m aiointerp info``: this Python and aiointerp's view of it, for bug reports.

:func:`info` gathers it, with the known CPython defects of this exact version (the
table of :mod:`aiointerp._host._defects`); :func:`format_info` prints it.
"""

from __future__ import annotations

import os
import platform
import sys
import sysconfig
import textwrap
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .._host._defects import Defect, defects_of, free_threaded_refusal

__all__ = ["Info", "format_info", "info"]


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
    try:  # deferred: on a Python without subinterpreters the import is what fails
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
