"""A module whose import never ends (a stuck ``preload``), in a process worker.

It writes its pid to the FIFO whose path is in ``AIOINTERP_TEST_STUCK_FIFO`` (the
test holds it open; a process worker inherits the environment), then blocks for ever.
"""

import os
import threading

_fd = os.open(os.environ["AIOINTERP_TEST_STUCK_FIFO"], os.O_WRONLY)
os.write(_fd, os.getpid().to_bytes(8, "little"))
os.close(_fd)
threading.Event().wait()
