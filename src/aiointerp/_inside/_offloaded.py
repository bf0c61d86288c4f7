"""The original function of an ``@offload`` wrapper: sent by name, found in the worker.

``@offload`` (:mod:`aiointerp._offload`) rebinds a module's name to its async wrapper,
so the original cannot be pickled by reference. It is sent as a :class:`SyncRef`,
which pickles as :func:`_resolve_sync` of its module and qualified name: the worker
imports the module and follows ``__wrapped__`` from the wrapper to the original.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType
    from typing import Any

__all__ = ["SyncRef", "wrapper_codes"]

#: the code object of offload's wrapper (added by :mod:`aiointerp._offload`, which
#: the module of an offloaded function imports before it is looked up): an attribute
#: would not do as the mark, since :func:`functools.wraps` copies ``__dict__``
wrapper_codes: set[CodeType] = set()


class SyncRef:
    """The original function of an ``@offload`` wrapper, as sent to workers."""

    def __init__(self, module: str, qualname: str, func: Callable[..., Any]) -> None:
        self.__module__ = module
        self.__qualname__ = qualname  # for the labels of messages
        self._func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(*args, **kwargs)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return _resolve_sync, (self.__module__, self.__qualname__)

    def __repr__(self) -> str:
        return f"<original of @offload {self.__module__}.{self.__qualname__}>"


def _resolve_sync(module: str, qualname: str) -> Callable[..., Any]:
    """Worker side: find the original function of the ``@offload`` wrapper ``module.qualname``.

    Decorators stacked above ``@offload`` are followed through ``__wrapped__``.

    :raises AttributeError: the name does not lead to an offload wrapper (in a fresh
        worker, for a ``__main__`` script: the worker then loads the script)
    """
    obj: Any = sys.modules.get(module)
    if obj is None:
        __import__(module)
        obj = sys.modules[module]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    while getattr(obj, "__code__", None) not in wrapper_codes:
        obj = obj.__wrapped__  # AttributeError when the chain ends
    return obj.__wrapped__  # type: ignore[no-any-return]
