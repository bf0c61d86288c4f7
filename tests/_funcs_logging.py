"""Functions that log and warn inside worker interpreters (tests/test_logging.py)."""

from __future__ import annotations

import logging
import threading
import warnings

from aiointerp import _interp

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
