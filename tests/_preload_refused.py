"""A module that refuses to load in a subinterpreter, as pydantic-core or numpy do.

It loads in the main interpreter (of a process worker, or of the host).
"""

from aiointerp._wire import _interp

if _interp.current_id() != 0:
    raise ImportError(
        f"module {__name__} does not support loading in subinterpreters",
        name=__name__,
    )
