"""Module-level functions and modules that the ``preload`` tests use in workers.

``_preload_broken`` (imports a module that does not exist) and ``_preload_refused``
(refuses subinterpreters, as pydantic-core or numpy do, but loads in a process) are
the modules of this directory that a worker fails to preload.
"""

from __future__ import annotations

import os
import sys

#: What the pool's initializer saw in this worker (see :func:`init_note_modules`).
_seen_by_initializer: dict[str, bool] = {}


def loaded(name: str) -> bool:
    """Whether this worker imported *name* already (without importing it)."""
    return name in sys.modules


def init_note_modules(*names: str) -> None:
    """Initializer: remember which of *names* were imported before it ran."""
    for name in names:
        _seen_by_initializer[name] = name in sys.modules


def seen_by_initializer() -> dict[str, bool]:
    return dict(_seen_by_initializer)


def init_block(started_w: int, release_r: int) -> None:
    """Initializer that says it runs, then waits for one byte on *release_r*."""
    os.write(started_w, b"s")
    os.read(release_r, 1)
