"""``python -m aiointerp check``: the checks of the command line, and their table.

:func:`check` runs :func:`~aiointerp._host._checks.check_module` or
:func:`~aiointerp._host._checks.check_function` for each target; :func:`format_results`
prints their :class:`~aiointerp._host._checks.CheckResult` as a table.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Sequence
from typing import Final

from .._host._checks import (
    CheckResult,
    Runs,
    Status,
    check_function,
    check_module,
    is_target,
    listed,
    refused_count,
)

__all__ = ["check", "format_results"]


def check(targets: Sequence[str], *, submodules: bool = True) -> list[CheckResult]:
    """:func:`check_module` or :func:`check_function` for each of *targets*, in order.

    The checks run one after the other on a helper thread (entering an interpreter
    from the main thread costs more on 3.14), each in fresh interpreters.

    :param targets: absolute module names, or ``module:function``
    :param submodules: import the submodules of packages too
    :raises ValueError: one of *targets* is not a module name or ``module:function``
        (before any import)
    """
    for target in targets:
        if not is_target(target):
            raise ValueError(f"not a module name: {target!r}")
    results: list[CheckResult] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            for target in targets:
                if ":" in target:
                    results.append(check_function(target))
                else:
                    results.append(check_module(target, submodules=submodules))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="aiointerp-check")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return results


_REFUSED_HINT: Final = (
    "refused: a C extension module does not support isolated interpreters "
    "(PEP 684). Run code that needs it in a process: "
    'InterpreterPool(kind="process"), or kind="auto", which runs each function in an '
    "interpreter when it can and in a process otherwise; or ask the extension's "
    "maintainers for subinterpreter support."
)

_LABELS: Final[dict[Status, str]] = {
    "loads": "loads",
    "refused": "refused",
    "failed": "failed",
    "not_installed": "not installed",
}
_RUNS: Final[dict[Runs, str]] = {
    "reference": "by reference",
    "value": "by value",
    "process": "process",
}


def _label(result: CheckResult) -> str:
    if result.runs is not None:
        return _RUNS[result.runs]
    return _LABELS[result.status]


def _detail(result: CheckResult) -> str:
    if result.is_function:
        return _function_detail(result)
    subs = result.submodules
    if result.status == "refused" and subs is not None and subs.refused:
        blocking = [n for n, e in subs.refused if e not in result.fallbacks]
        others = {e for n, e in subs.refused if e != result.extension}
        by = f"by {result.extension}"
        if others:
            by += f" (and {len(others)} more extension{'s' * (len(others) > 1)})"
        return f"{by}: {refused_count(blocking, subs)}: {listed(blocking)}"
    if result.status == "loads":
        text = f"{(result.seconds or 0.0) * 1000:.0f} ms"
        if result.fallbacks:
            text += f"; loaded without {', '.join(result.fallbacks)} (refused)"
        if subs is not None:
            text += f"; {subs.checked} submodules checked"
            if not subs.complete:
                text += " (the first ones: the walk stopped there)"
            if subs.refused:
                shown = listed([n for n, _ in subs.refused])
                text += f"; {shown} need what it loaded without"
        return text
    if result.status == "refused":
        return f"by {result.extension or 'an extension module'}"
    if result.status == "failed":
        return next(iter((result.error or "").strip().splitlines()), "")
    return ""


def _function_detail(result: CheckResult) -> str:
    if result.runs == "reference":
        ms = (result.seconds or 0.0) * 1000
        return f"runs in an interpreter (its module loads in {ms:.0f} ms)"
    if result.runs == "value":
        return f"runs in an interpreter: {result.note}"
    if result.runs == "process":
        return f"only a process can run it: {result.note}"
    if result.note:
        return result.note
    if result.status == "failed":
        return next(iter((result.error or "").strip().splitlines()), "")
    return ""


def format_results(results: list[CheckResult]) -> str:
    """An aligned table, one line per module, and a hint when a module was refused."""
    rows = [("MODULE", "STATUS", "DETAIL")]
    rows += [(r.module, _label(r), _detail(r)) for r in results]
    first = max(len(row[0]) for row in rows)
    second = max(len(row[1]) for row in rows)
    lines = [f"{a:<{first}}  {b:<{second}}  {c}".rstrip() for a, b, c in rows]
    if any(r.status == "refused" or r.runs == "process" for r in results):
        lines += ["", textwrap.fill(_REFUSED_HINT, 88)]
    return "\n".join(lines)
