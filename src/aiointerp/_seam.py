"""The integrations' seam: what :mod:`aiointerp.asgi`, :mod:`aiointerp.starlette` and
:mod:`aiointerp.dask` use of the package besides its public names.

The integrations import the public face (:mod:`aiointerp`, its ``_api`` and ``_pool``)
and this module, never the sides of the wire (``_wire``, ``_inside``, ``_kinds``,
``_host``) or ``_cli``: what they need of those is named here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypedDict

from ._host._defects import sampling_may_crash, sampling_verified_safe
from ._host._map import map_in_pool
from ._host._validate import reject_async
from ._inside._loop import _LOAD_NOTE
from ._kinds._backends import thread_safe_call_soon
from ._wire._encoding import describe

__all__ = [
    "PoolOptions",
    "PoolOptionsAndKind",
    "describe",
    "map_in_pool",
    "not_loaded_by",
    "reject_async",
    "reusable",
    "sampling_may_crash",
    "sampling_verified_safe",
    "thread_safe_call_soon",
]


class PoolOptions(TypedDict, total=False):
    """The options of :class:`~aiointerp.InterpreterPool` besides ``max_workers`` and
    ``kind``, in its order, with its types (the integrations' tests compare them).
    """

    min_idle: int
    idle_timeout: float | None
    max_tasks_per_worker: int | None
    initializer: Callable[..., object] | None
    initargs: Iterable[Any]
    cancel_grace: float
    forward_logging: bool
    max_waiting: int | None
    forward_output: bool
    preload: Iterable[str]


class PoolOptionsAndKind(PoolOptions, total=False):
    """:class:`PoolOptions` and ``kind``: every option besides ``max_workers``."""

    kind: str


def reusable[O: PoolOptions](options: O) -> O:
    """*options* with their iterables as tuples, for options used more than once (each
    startup of an app opens a pool with them; Dask pickles them to each worker): the
    check when they are given must not use an iterator up. A ``preload`` string is
    left as it is, for the pool to refuse."""
    reusable: PoolOptions = options.copy()
    if "initargs" in reusable:
        reusable["initargs"] = tuple(reusable["initargs"])
    preload = reusable.get("preload")
    if preload is not None and not isinstance(preload, str):
        reusable["preload"] = tuple(preload)
    return reusable  # type: ignore[return-value]  # a copy of an O


def not_loaded_by(exc: BaseException, kind: str) -> bool:
    """Did *exc* come from a worker of *kind* that could not load the call?"""
    return _LOAD_NOTE.format(kind) in getattr(exc, "__notes__", ())
