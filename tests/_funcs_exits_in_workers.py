"""A module whose top-level code exits when a worker imports it (and only there).

The host imports it as any module; a worker that loads :func:`answer` imports it
again, and its ``sys.exit(4)`` runs there (tests/kinds/test_faults.py). Stdlib only.
"""

from __future__ import annotations

import sys

from aiointerp._inside import _job

if _job._state is not None:  # inside a worker: the loop set it before the call
    sys.exit(4)


def answer() -> int:
    return 42
