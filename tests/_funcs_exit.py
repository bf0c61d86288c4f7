"""Code that process exit has to wait for (tests/kinds/test_exit.py, tests/scripts/exit_wait.py).

Each function writes one byte to *started_w* once it runs, then does not return
within the test: it is in a C call that cannot be interrupted, or in a loop that
catches :class:`aiointerp.Interrupted` and carries on. An interrupt may come right
after the handshake (the worker's thread is not scheduled at once): both are
written so that it changes nothing.
"""

from __future__ import annotations

import os
import time

#: longer than any test: the process ends before the code does
FOREVER = 120.0


def sleep_long(started_w: int) -> None:
    """A C call that cannot be interrupted."""
    try:
        os.write(started_w, b"s")
        time.sleep(FOREVER)
    finally:  # interrupted before the sleep began: the cleanup is the same C call
        time.sleep(FOREVER)


def swallow_interrupts(started_w: int) -> None:
    """Catches everything, aiointerp.Interrupted included, and goes on."""
    end = time.monotonic() + FOREVER
    started = False
    while True:
        try:  # every instruction after the handshake is inside this try
            if not started:
                started = True
                os.write(started_w, b"s")
            while time.monotonic() < end:
                time.sleep(0.01)
            return
        except BaseException:
            pass
