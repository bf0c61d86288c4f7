"""What the messages of a worker's failures say: a start that failed, a job refused."""

from __future__ import annotations

__all__ = ["init_failure", "refused"]


def refused(args: object, where: str = "argument") -> str:
    """Why the channel refused shareable-looking *args* (never the whole job's repr)."""
    if isinstance(args, tuple):
        for index, item in enumerate(args):
            why = refused(item, f"{where} {index}")
            if why:
                return why
        return "" if where != "argument" else "the channel refused them"
    if isinstance(args, memoryview):
        try:
            args.nbytes  # noqa: B018 - raises for a released view
        except ValueError:
            return f"{where} is a released memoryview"
    return ""


def init_failure(exc: BaseException, preload: tuple[str, ...], kind: str) -> str:
    """What failed before a worker of *kind* was ready: the import of a *preload*
    module (the worker noted which on the exception), or the initializer."""
    # deferred: the serve loop is the worker's module; the host reads its note only
    # when a start failed
    from .._inside._loop import PRELOAD_NOTE

    text = str(exc).strip()
    if "\n" in text:  # numpy's 30 lines: the last one says what failed
        text = f"{text.splitlines()[-1].strip()} [...] (in full: the cause)"
    what = f"{type(exc).__name__}: {text}"
    # the worker's exception, or its cause under aiointerp's refusal ImportError
    notes = [
        *(getattr(exc, "__notes__", None) or ()),
        *(getattr(exc.__cause__, "__notes__", None) or ()),
    ]
    for name in preload:
        if PRELOAD_NOTE.format(name) in notes:
            return f"a new {kind} worker could not import {name!r} (preload): {what}"
    return f"the pool's initializer raised {what}"
