"""A module whose import waits for the test, the first time (a probe of it).

Its import writes one byte to the FIFO named by ``AIOINTERP_TEST_SLOW_STARTED`` and
reads one byte from the FIFO named by ``AIOINTERP_TEST_SLOW_RELEASE``, unless the
file named by ``AIOINTERP_TEST_SLOW_DONE`` exists (imports after the probe).
"""

from __future__ import annotations

import os

if not os.path.exists(os.environ["AIOINTERP_TEST_SLOW_DONE"]):
    _fd = os.open(os.environ["AIOINTERP_TEST_SLOW_STARTED"], os.O_WRONLY)
    try:
        os.write(_fd, b"s")
    finally:
        os.close(_fd)
    _fd = os.open(os.environ["AIOINTERP_TEST_SLOW_RELEASE"], os.O_RDONLY)
    try:
        os.read(_fd, 1)
    finally:
        os.close(_fd)
