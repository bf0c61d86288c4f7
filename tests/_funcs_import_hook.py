"""Functions of tests/inside/test_logging.py for the worker's import of ``logging``.

This module must not import :mod:`logging` itself (nor anything that does): the worker
configures ``logging`` when the user's code first imports it.
"""

from __future__ import annotations

import importlib.util  # noqa: F401  (the hook imports it: it must be found)
import sys


def imported(name: str) -> bool:
    """Is module *name* imported in this worker?"""
    return name in sys.modules


def import_logging_unfindable() -> str:
    """Import ``logging`` where no finder but the worker's own hook is left: the hook
    finds no spec and steps aside. Returns the import's error; the finders are back."""
    if "logging" in sys.modules:
        return "logging was imported already"
    finders = sys.meta_path[:]
    sys.meta_path[:] = [f for f in finders if type(f).__name__ == "_ImportHook"]
    try:
        import logging  # noqa: F401
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        sys.meta_path[:] = [f for f in finders if type(f).__name__ != "_ImportHook"]
    return "imported"
