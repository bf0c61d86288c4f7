"""Run sync functions in CPython subinterpreters from asyncio and trio code.

``await run_sync_in_interpreter(fn, *args)`` runs ``fn`` in a warm subinterpreter
with its own GIL, so CPU-bound work runs in parallel on every core inside one
process while the event loop stays responsive; cancelling the caller stops the code.

The package's own import is cheap: worker interpreters import
:mod:`aiointerp.worker` and the loop that serves them, never anyio or trio, so
the names below are loaded on first use (PEP 562).
"""

from __future__ import annotations

import sys as _sys

if _sys.version_info < (3, 13):  # requires-python keeps pip from installing it
    raise ImportError(
        "aiointerp needs CPython 3.13 or newer with subinterpreter support; "
        f"this is Python {_sys.version.split()[0]}"
    )

from ._wire._errors import Interrupted as Interrupted

# typing costs every worker interpreter ~5 ms of start-up; annotations are lazy
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any as _Any

    from ._api import current_default_pool as current_default_pool
    from ._api import run_sync_in_interpreter as run_sync_in_interpreter
    from ._executor import InterpreterExecutor as InterpreterExecutor
    from ._host._stats import PoolStats as PoolStats
    from ._offload import offload as offload
    from ._pool import InterpreterPool as InterpreterPool
    from ._wire._errors import AiointerpError as AiointerpError
    from ._wire._errors import BrokenWorkerError as BrokenWorkerError
    from ._wire._errors import NotShareableError as NotShareableError
    from ._wire._errors import PoolBusyError as PoolBusyError
    from ._wire._errors import PoolClosedError as PoolClosedError
    from ._wire._errors import RemoteError as RemoteError
    from ._wire._errors import RemoteTraceback as RemoteTraceback
del TYPE_CHECKING

__all__ = [
    "AiointerpError",
    "BrokenWorkerError",
    "InterpreterExecutor",
    "InterpreterPool",
    "Interrupted",
    "NotShareableError",
    "PoolBusyError",
    "PoolClosedError",
    "PoolStats",
    "RemoteError",
    "RemoteTraceback",
    "current_default_pool",
    "offload",
    "run_sync_in_interpreter",
]

_LAZY = {
    "current_default_pool": "._api",
    "run_sync_in_interpreter": "._api",
    "AiointerpError": "._wire._errors",
    "BrokenWorkerError": "._wire._errors",
    "NotShareableError": "._wire._errors",
    "PoolBusyError": "._wire._errors",
    "PoolClosedError": "._wire._errors",
    "RemoteError": "._wire._errors",
    "RemoteTraceback": "._wire._errors",
    "InterpreterPool": "._pool",
    "InterpreterExecutor": "._executor",
    "offload": "._offload",
    "PoolStats": "._host._stats",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aiointerp' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
