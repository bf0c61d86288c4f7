"""The host half of log, warning and output forwarding: a worker's items, handled here.

A worker's records, warnings and output (the items of :mod:`aiointerp._wire._logitems`)
reach the host in order, and before the outcome of the call that made them.

* A record is handled by the host's logger of the same name (its level, filters,
  handlers and formatters apply), with ``record.interpreter`` set to the worker's id.
* A warning is issued again with :func:`warnings.warn_explicit`, so the host's
  filters apply; one that they turn into an error is logged on ``py.warnings``
  instead (the code that warned has moved on).
* Output is written to the host's *current* ``sys.stdout`` or ``sys.stderr``,
  whatever replaced them (``contextlib.redirect_stdout``, pytest's ``capsys``, a
  notebook's cell output), and flushed when the worker's code flushed.
* What a worker dropped between calls is reported once: a line on ``sys.stderr``
  for output, a warning on the ``aiointerp`` logger for records and warnings.

An error raised by the host's filters, handlers or streams is reported as
:meth:`logging.Handler.handleError` does (a traceback on stderr, unless
:data:`logging.raiseExceptions` is false) and goes no further: the worker's code is
running and must not be interrupted for it.

:class:`LevelTable` holds the host's logging levels that workers apply.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from .._wire._logitems import DROPPED, FIELDS, OUTPUT, WARNING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .._wire._logitems import Levels

__all__ = ["LevelTable", "handle", "level_table"]


class LevelTable:
    """The host's logging levels, recomputed only when its configuration changed.

    ``Logger.setLevel``, ``logging.disable``, ``basicConfig`` and ``dictConfig``
    clear every logger's level cache (a CPython detail since 3.7); a sentinel
    logger's cache being empty says so at the cost of a dict lookup per call.
    """

    def __init__(self) -> None:
        self._sentinel = logging.getLogger("aiointerp._levels")
        self.version = 0
        self.levels: Levels = (logging.WARNING, 0, ())
        self.refresh()

    def current(self) -> int:
        """The version of the table, after refreshing it if the host's levels changed."""
        if not self._sentinel._cache:  # type: ignore[attr-defined]
            self.refresh()
        return self.version

    def refresh(self) -> None:
        """Read the host's levels again; a new version if they changed."""
        manager = logging.root.manager
        named = tuple(
            sorted(
                (name, logger.level)
                for name, logger in list(manager.loggerDict.items())
                if isinstance(logger, logging.Logger) and logger.level
            )
        )
        levels = (logging.root.level, manager.disable, named)
        if levels != self.levels:
            self.levels = levels
            self.version += 1
        self._sentinel.isEnabledFor(logging.DEBUG)  # fills the cache again


_table: LevelTable | None = None


def level_table() -> LevelTable:
    """The process's :class:`LevelTable` (host side)."""
    global _table
    if _table is None:
        _table = LevelTable()
    return _table


def handle(item: object, interpreter: int | None, kind: str = "interpreter") -> None:
    """Handle a record, a warning or output forwarded by the worker of *interpreter*.

    *interpreter* is the worker's id (``record.interpreter``: the interpreter id, or
    the pid of a process worker); *kind* its kind, in messages.

    Never raises :class:`Exception`: an error of the host's logging or warning
    machinery (a filter or handler that raises) is reported on stderr as
    :meth:`logging.Handler.handleError` reports a failing ``emit()``, once per item.
    It would otherwise surface in the middle of the call whose code logged.
    """
    if type(item) is not tuple:  # put by an interpreter destroyed since: unbound
        return
    if item[0] == OUTPUT:
        _write(item, f"{kind} {interpreter}")
        return
    if item[0] == DROPPED:
        _report_dropped(item, f"{kind} worker {interpreter}")
        return
    if item[0] == WARNING:
        _warn(item, interpreter, kind)
        return
    _, values, message, exc_text, extra = item
    fields = dict(zip(FIELDS, values, strict=True))
    record = None
    try:
        logger = logging.getLogger(fields["name"]) if fields["name"] != "root" else None
        logger = logger or logging.root
        if not logger.isEnabledFor(fields["levelno"]):
            return
        fields.update(extra)
        fields.update(
            msg=message, args=None, exc_text=exc_text, interpreter=interpreter
        )
        record = logging.makeLogRecord(fields)
        logger.handle(record)
    except Exception:
        _report_error(record or logging.makeLogRecord(fields))


def _write(item: tuple[Any, ...], worker: str) -> None:
    """Write a worker's output to this process's current stdout or stderr."""
    _, fd, text, flush = item
    stream = sys.stdout if fd == 1 else sys.stderr
    if stream is None:  # pythonw, or closed on purpose: nowhere to write
        return
    try:
        if text:
            stream.write(text)
        if flush:
            stream.flush()
    except Exception:  # a closed stream, an encoding it cannot write...
        name = "stdout" if fd == 1 else "stderr"
        _report_error(
            logging.makeLogRecord(
                {
                    "name": "aiointerp",
                    "msg": f"output of worker {worker} to sys.{name}: {text[:200]!r}",
                    "args": None,
                }
            )
        )


def _report_dropped(item: tuple[Any, ...], worker: str) -> None:
    """Say once what a worker dropped between two calls, over its budget."""
    _, text, records, budget = item
    why = (
        f"written between calls, while nothing read them, beyond the "
        f"{budget // 1024} KiB the worker keeps for the next call (a thread a call "
        "started writes on after the call returned: join it before returning)"
    )
    if text:
        _write(
            (
                OUTPUT,
                2,
                f"[aiointerp: {text} characters of output from {worker} dropped: "
                f"{why}]\n",
                False,
            ),
            worker,
        )
    if records:
        try:
            logging.getLogger("aiointerp").warning(
                "%s log records and warnings from %s dropped: %s", records, worker, why
            )
        except Exception:  # a handler of the host's that raises
            _report_error(logging.makeLogRecord({"name": "aiointerp", "msg": why}))


def _warn(item: tuple[Any, ...], interpreter: int | None, kind: str) -> None:
    _, module, qualname, message, filename, lineno = item
    try:
        category = _warning_class(module, qualname)
        try:
            warnings.warn_explicit(message, category, filename, lineno)
        except Warning as exc:  # the host's filters turned it into an error
            logging.getLogger("py.warnings").error(
                "%s:%s: %s: %s (in %s %s; an error under this process's "
                "warning filters, but the code that warned has carried on)",
                filename,
                lineno,
                type(exc).__name__,
                message,
                kind,
                interpreter,
            )
    except Exception:  # showwarning, a filter or a py.warnings handler raised
        _report_error(
            logging.makeLogRecord(
                {
                    "name": "py.warnings",
                    "levelno": logging.WARNING,
                    "levelname": "WARNING",
                    "pathname": filename,
                    "filename": os.path.basename(filename),
                    "lineno": lineno,
                    "msg": f"{qualname}: {message}",
                    "args": None,
                    "interpreter": interpreter,
                }
            )
        )


_reporter: logging.Handler | None = None


def _report_error(record: logging.LogRecord) -> None:
    """Report the exception being handled as logging reports a failing handler.

    :meth:`logging.Handler.handleError`: a traceback and the record's message on
    stderr, nothing when :data:`logging.raiseExceptions` is false.
    """
    global _reporter
    if _reporter is None:
        _reporter = logging.Handler()
    _reporter.handleError(record)


def _warning_class(module: str, qualname: str) -> type[Warning]:
    """The host's class of the worker's warning, or UserWarning if it has none."""
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, Warning):
        return found
    return UserWarning
