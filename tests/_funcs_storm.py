"""Module-level functions sent to worker interpreters by the SIGINT-storm programs.

Stdlib only: tests/scripts/sigint_storm.py and tests/scripts/sigint_once.py call
them with a distinct token per call, and each returns its own token, so a call that
gets another call's result is seen at once.
"""

from __future__ import annotations

import time


def token(value: str) -> str:
    """Return at once: most of an interrupted call's time is the round trip."""
    return value


def spin_token(value: str, seconds: float) -> str:
    """Busy-loop for ``seconds`` in pure Python (interruptible anywhere), then return."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return value
