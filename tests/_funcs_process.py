"""Module-level functions run in process workers by tests/kinds/test_process_workers.py.

Stdlib only. Handshakes go through a FIFO whose path the test passes (a process
worker does not inherit the test's pipes): the code writes its pid, 8 bytes, once it
runs; ``finally`` blocks write to a file.
"""

from __future__ import annotations

import os
import signal
import time

_value: object = None


def started(fifo: str) -> None:
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, os.getpid().to_bytes(8, "little"))
    finally:
        os.close(fd)


def write(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def spin(fifo: str, path: str) -> None:
    """Loop forever in pure Python; the finally records that it ran."""
    try:
        started(fifo)
        while True:
            pass
    finally:
        write(path, "finally\n")


def sleep_forever(fifo: str) -> None:
    """Block in C (time.sleep), and swallow the one interrupt: nothing stops it."""
    announced = False
    while True:
        try:  # the interrupt may land anywhere after the handshake's write
            if not announced:
                announced = True
                started(fifo)
            time.sleep(60)
        except BaseException:
            pass


def exit_now(status: int) -> None:
    os._exit(status)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def set_value(value: object) -> None:
    global _value
    _value = value


def get_value() -> object:
    return _value


def print_pid_then(how: str) -> None:
    """For the orphan test: print the pid on the host's stdout, then never return."""
    os.write(1, f"{os.getpid()}\n".encode())  # one write: two workers share stdout
    if how == "sleep":
        time.sleep(60)
    while True:
        pass


def load_single_phase() -> str:
    """Import a module that isolated subinterpreters refuse (single-phase init)."""
    import _testsinglephase  # type: ignore[import-not-found]

    return str(_testsinglephase.__name__)


def sigint_self() -> str:
    """What a terminal's Ctrl-C does to a worker process (its process group's)."""
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):  # bytecodes where a KeyboardInterrupt would be raised
        pass
    return "survived"


def stall_exit() -> int:
    """Make this process's exit hang (an atexit handler blocked in C); its pid."""
    import atexit

    atexit.register(time.sleep, 3600)
    return os.getpid()
