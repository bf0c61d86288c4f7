"""A function pickled by value (cloudpickle), as a pool sends it when its module is refused.

:func:`pickle_by_value` is the second way a pool tries after a refusal
(:mod:`aiointerp._host._routing`), and the way ``python -m aiointerp check`` tests it
(:func:`aiointerp._host._checks.check_function`). :func:`target_of` is the plain
function a route is learned for.
"""

from __future__ import annotations

import sys
import threading

from .._inside._offloaded import SyncRef
from .._wire import _encoding

__all__ = ["pickle_by_value", "target_of"]

#: cloudpickle's registry of modules sent by value is process-wide
_REGISTRY_LOCK = threading.Lock()


def target_of(func: object) -> object:
    """The plain function under *func* (a partial, a map batch, an ``@offload``)."""
    for _ in range(8):
        if isinstance(func, SyncRef):
            func = func._func
        inner = getattr(func, "func", None)  # functools.partial, _batch.Batch
        if inner is None or not callable(inner):
            return func
        func = inner
    return func


def pickle_by_value(func: object) -> bytes | None:
    """*func* pickled by value (its module's code not imported), or ``None``.

    Its code and the functions of its module that it uses travel; the other modules
    it uses are imported by name where it is loaded.

    ``None`` when cloudpickle is not installed, when *func* is not defined in a
    module (a builtin), or when it cannot be pickled so.
    """
    try:
        import cloudpickle  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    target = target_of(func)
    module = sys.modules.get(getattr(target, "__module__", None) or "")
    if module is None or module.__name__ == "builtins":
        return None
    name = module.__name__
    # an @offload reference unwrapped: what it stands for, under the same name
    sent = target if isinstance(func, SyncRef) else func
    with _REGISTRY_LOCK:  # another thread's pool must not unregister it meanwhile
        # cloudpickle sends what __main__ defines by value of itself
        registered = (
            name == "__main__" or name in cloudpickle.list_registry_pickle_by_value()
        )
        try:
            if not registered:
                cloudpickle.register_pickle_by_value(module)
            return bytes(cloudpickle.dumps(sent, _encoding._PROTOCOL))
        except Exception:
            return None
        finally:
            if not registered and name in cloudpickle.list_registry_pickle_by_value():
                cloudpickle.unregister_pickle_by_value(module)
