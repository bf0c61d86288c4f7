"""What the workers of a pool are started with, and how messages name a worker."""

from __future__ import annotations

import sys

from .._inside._interrupt import raise_points
from .._wire import _encoding
from .._wire._protocol import WorkerConfig
from . import _forwarded

__all__ = ["SWITCH_INTERVAL", "a_worker", "worker_config"]

#: Switch interval inside workers: the watchdog needs the GIL to inject an interrupt.
SWITCH_INTERVAL = 0.001


def worker_config(
    init_blob: bytes | None,
    forward_logging: bool,
    forward_output: bool = True,
    preload: tuple[str, ...] = (),
) -> WorkerConfig:
    """What every worker of a pool starting now is started with."""
    levels = _forwarded.level_table().levels if forward_logging else None
    return WorkerConfig(
        tuple(sys.path),
        _encoding.main_spec(),
        init_blob,
        SWITCH_INTERVAL,
        levels,
        raise_points(),
        forward_output,
        preload,
        # as multiprocessing's spawn passes it (str(): a worker takes shareable values)
        tuple(str(arg) for arg in getattr(sys, "argv", ())),
    )


def a_worker(kind: str) -> str:
    """``an interpreter worker``, ``a process worker``: a worker of *kind*, in messages."""
    return f"{'an' if kind[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {kind} worker"
