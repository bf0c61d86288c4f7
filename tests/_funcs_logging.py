"""Functions that log and warn inside worker interpreters (tests/inside/test_logging.py)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings

from aiointerp._wire import _interp

logger = logging.getLogger("aiointerp_tests.worker")


class CustomWarning(UserWarning):
    """A warning class the host can import too."""


def log_one(level: int, text: str, value: int) -> int:
    logger.log(level, "%s %d", text, value, extra={"order_id": value, "tag": "x"})
    return _interp.current_id()


def log_exception() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception("it failed")


def enabled(name: str, level: int) -> bool:
    """Does the worker's logger build records of *level*? (the host's levels apply)"""
    return logging.getLogger(name).isEnabledFor(level)


def log_many(count: int) -> int:
    """Log *count* records and return at once: none may be lost."""
    for i in range(count):
        logger.warning("record %d", i)
    return count


def log_from_threads(threads: int) -> None:
    def work(n: int) -> None:
        logging.getLogger(f"aiointerp_tests.thread{n}").warning("from thread %d", n)

    started = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()


def warn(text: str, custom: bool) -> int:
    warnings.warn(text, CustomWarning if custom else UserWarning, stacklevel=1)
    return _interp.current_id()


def root_handlers() -> int:
    return len(logging.getLogger().handlers)


def log_in_initializer() -> None:
    logging.getLogger("aiointerp_tests.init").warning("initializer ran")


def report_concurrently(threads: int, count: int) -> int:
    """*threads* threads each log *count* records or issue *count* warnings, at once.

    Returns when all are done. Items queued by two threads at the same moment must
    still wake the host: none may be left in the queue when the outcome arrives.
    Records pass through their handler's lock; warnings through no lock of
    :mod:`logging`, so threads that warn race with each other and with those that log.
    """
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        thread_logger = logging.getLogger(f"aiointerp_tests.concurrent{n}")
        barrier.wait()
        for i in range(count):
            if n % 2:
                warnings.warn(f"thread {n} warning {i}", UserWarning, stacklevel=1)
            else:
                thread_logger.warning("record %d", i)

    started = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    interval = sys.getswitchinterval()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        sys.setswitchinterval(1e-6)  # switch threads as often as CPython can
        try:
            for thread in started:
                thread.start()
            for thread in started:
                thread.join()
        finally:
            sys.setswitchinterval(interval)
    return threads * count


#: the thread log_flood() started (a module global of the worker)
_flood: threading.Thread | None = None


def log_flood(count: int, go: str, done: str) -> int:
    """Start a thread that logs *count* records between calls, and return.

    It waits for a byte on the FIFO *go* (written by the host once this call has
    returned), logs, then writes a byte to the FIFO *done* (both held open by the
    host: opening them never blocks).
    """
    global _flood

    def run() -> None:
        fd = os.open(go, os.O_RDONLY)
        try:
            os.read(fd, 1)
        finally:
            os.close(fd)
        flood = logging.getLogger("aiointerp_tests.flood")
        for i in range(count):
            flood.warning("flood %d", i)
        fd = os.open(done, os.O_WRONLY)
        try:
            os.write(fd, b"d")
        finally:
            os.close(fd)

    _flood = threading.Thread(target=run, name="log-flood")
    _flood.start()
    return count


def join_log_flood() -> int:
    """The next call: wait for the flood's thread to end, log, return."""
    assert _flood is not None
    _flood.join()
    logger.warning("joined")
    return 1
