"""Worker-side API: call these from code that runs in an aiointerp worker.

A worker is an interpreter or a process, as the pool's ``kind`` says; these work the
same in both. Stdlib only, cheap to import inside a worker. Outside a worker (plain
host code) they are harmless: :func:`checkpoint` does nothing, :func:`cancelled` is
``False`` and :func:`deadline` is ``None``, so the same function runs both ways.
"""

from ._inside._job import cancelled, checkpoint, deadline
from ._wire._errors import Interrupted

__all__ = ["Interrupted", "cancelled", "checkpoint", "deadline"]

for _name in ("cancelled", "checkpoint", "deadline"):
    globals()[_name].__module__ = __name__
del _name
