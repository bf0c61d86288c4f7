"""Log records and warnings of worker interpreters, handled by the host's logging.

Stdlib only; both ends live here, as in :mod:`aiointerp._transport`.

Worker side. :func:`install` runs once when a worker starts. It does not import
:mod:`logging` (13 to 24 ms in a fresh interpreter): a post-import hook configures it
when the user's code first imports it. The worker's loggers then get the levels of
the host's loggers (a *level table*, sent at start and again with the next call
whenever the host's configuration changed), so a record the host would drop for its
level is never built nor shipped. A handler on the worker's root logger turns each
record into a tuple of shareable values, puts it on the worker's log queue and, if
the queue was empty, writes ``b"L"`` to the done pipe. Warnings shown by the worker (after the worker's own
filters) travel the same way. Both take one lock (the handler's) to queue an item and
look at the queue's size: two threads that queued at once would each see the other's
item, and neither would wake the host.

Host side. The worker reads ``b"L"`` among its signals, and before every outcome, and
drains the queue on the event loop: each record is handled by the host's logger of the
same name (its level, filters, handlers and formatters apply), with
``record.interpreter`` set to the worker's interpreter id; each warning is issued again
with :func:`warnings.warn_explicit`, so the host's filters apply (a warning that they
turn into an error is logged on ``py.warnings`` instead: the code that warned has
moved on). Records reach the host in order and before the outcome of the call that
logged them. An error raised by the host's filters, handlers or warning machinery is
reported as :meth:`logging.Handler.handleError` does (a traceback on stderr, unless
:data:`logging.raiseExceptions` is false) and goes no further: the worker's code is
running and must not be interrupted for it.
"""

from __future__ import annotations

import os
import sys
from _thread import RLock

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, Final

    type Levels = tuple[int, int, tuple[tuple[str, int], ...]]
    """(root level, logging.disable level, (name, level) of loggers with a level)"""

__all__ = ["Levels", "LevelTable", "handle", "install", "level_table"]

LOG: Final = 0
WARNING: Final = 1

#: LogRecord attributes that travel (strings, numbers or None in the worker)
_FIELDS: Final = (
    "name",
    "levelno",
    "levelname",
    "pathname",
    "filename",
    "module",
    "lineno",
    "funcName",
    "created",
    "msecs",
    "relativeCreated",
    "thread",
    "threadName",
    "process",
    "processName",
    "taskName",
    "stack_info",
)
#: attributes of every LogRecord: what is left in a record's __dict__ is `extra=`
_STANDARD: Final = frozenset(
    (*_FIELDS, "msg", "args", "exc_info", "exc_text", "message", "asctime")
)
_SIMPLE: Final = (str, int, float, bool, type(None))


# -- worker side --------------------------------------------------------------------


class _Forwarding:
    """Worker-side state: the queue, the done pipe, the level table to apply."""

    def __init__(
        self,
        put: Callable[[Any], None],
        size: Callable[[], int],
        done_w: int,
        levels: Levels,
    ) -> None:
        self.put = put
        self.size = size
        self.done_w = done_w
        self.levels = levels
        self.named: set[str] = set()  # loggers we gave a level
        #: held to queue an item and look at the size; the root handler's lock too
        self.lock = RLock()
        self.sending = False  # a send() of this thread is under way (lock held)

    def send(self, item: tuple[Any, ...]) -> None:
        """Queue *item*; wake the host unless items it has not drained yet are queued.

        The host drains until the queue is empty: an item that finds others queued
        is drained with them (the oldest found an empty queue, and woke the host).
        Under the lock, so no other thread queues between the put and the size.
        A send that runs inside another (a ``__del__`` that logs, run by the garbage
        collector in the middle of ``put``) may see the outer item queued first:
        it wakes the host whatever the size. An interrupt raised between the put and
        the write leaves the item unannounced; the host drains before every outcome.
        """
        with self.lock:  # released if Interrupted is raised in here
            nested = self.sending
            self.sending = True
            try:
                self.put(item)
                if nested or self.size() == 1:
                    os.write(self.done_w, b"L")  # _protocol.LOG
            finally:
                self.sending = nested

    def set_levels(self, levels: Levels) -> None:
        self.levels = levels
        logging = sys.modules.get("logging")
        if logging is not None and getattr(logging.root, "_aiointerp", False):
            self._apply(logging)

    def _apply(self, logging: ModuleType) -> None:
        root_level, disabled, named = self.levels
        logging.root.setLevel(root_level)
        logging.disable(disabled)
        wanted = dict(named)
        for name in self.named - wanted.keys():
            logging.getLogger(name).setLevel(logging.NOTSET)
        for name, level in wanted.items():
            logging.getLogger(name).setLevel(level)
        self.named = set(wanted)

    def configure(self, module: ModuleType) -> None:
        """``logging`` was just imported in this worker: forward its records."""
        forwarding = self

        class _Handler(module.Handler):  # type: ignore[name-defined,misc]
            def createLock(self) -> None:
                # one lock for records and warnings: handle() holds it around emit()
                self.lock = forwarding.lock

            def emit(self, record: logging.LogRecord) -> None:
                try:
                    forwarding.send(_pack(record, module))
                except Exception:
                    self.handleError(record)

        module.root.addHandler(_Handler())
        module.root._aiointerp = True
        self._apply(module)


def _pack(record: logging.LogRecord, module: ModuleType) -> tuple[Any, ...]:
    fields = record.__dict__
    exc_text = record.exc_text
    if record.exc_info and not exc_text:
        exc_text = module.Formatter().formatException(record.exc_info)
    extra = tuple(
        (key, _shareable(value))
        for key, value in fields.items()
        if key not in _STANDARD and isinstance(value, _SIMPLE)
    )
    values = tuple(_shareable(fields.get(name)) for name in _FIELDS)
    return (LOG, values, record.getMessage(), exc_text, extra)


def _shareable(value: object) -> object:
    """*value* if it crosses interpreters as it is, else its ``str()``."""
    if isinstance(value, _SIMPLE) and not (
        type(value) is int and not -(2**63) <= value < 2**63
    ):
        return value
    return str(value)


class _ImportHook:
    """A meta path finder that configures ``logging`` right after it is imported."""

    def __init__(self, forwarding: _Forwarding) -> None:
        self.forwarding = forwarding

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(name)
        if spec is None or spec.loader is None:  # pragma: no cover
            return spec
        loader = spec.loader
        exec_module = loader.exec_module
        forwarding = self.forwarding

        def exec_and_configure(module: ModuleType) -> None:
            exec_module(module)
            forwarding.configure(module)

        loader.exec_module = exec_and_configure  # type: ignore[method-assign]
        return spec


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    forwarding = _forwarding
    assert forwarding is not None
    forwarding.send(
        (
            WARNING,
            category.__module__,
            category.__qualname__,
            str(message),
            filename,
            lineno,
        )
    )


_forwarding: _Forwarding | None = None


def install(
    put: Callable[[Any], None], size: Callable[[], int], done_w: int, levels: Levels
) -> _Forwarding:
    """Forward this worker's log records and warnings to the host (call once)."""
    global _forwarding
    forwarding = _forwarding = _Forwarding(put, size, done_w, levels)
    logging = sys.modules.get("logging")
    if logging is not None:  # pragma: no cover - imported by sitecustomize...
        forwarding.configure(logging)
    else:
        sys.meta_path.insert(0, _ImportHook(forwarding))
    import warnings

    warnings.showwarning = _show_warning
    return forwarding


# -- host side ----------------------------------------------------------------------


class LevelTable:
    """The host's logging levels, recomputed only when its configuration changed.

    ``Logger.setLevel``, ``logging.disable``, ``basicConfig`` and ``dictConfig``
    clear every logger's level cache (a CPython detail since 3.7); a sentinel
    logger's cache being empty says so at the cost of a dict lookup per call.
    """

    def __init__(self) -> None:
        import logging

        self._logging = logging
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
        logging = self._logging
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


def handle(item: tuple[Any, ...], interpreter: int | None) -> None:
    """Handle a record or a warning forwarded by the worker of *interpreter*.

    Never raises :class:`Exception`: an error of the host's logging or warning
    machinery (a filter or handler that raises) is reported on stderr as
    :meth:`logging.Handler.handleError` reports a failing ``emit()``, once per item.
    It would otherwise surface in the middle of the call whose code logged.
    """
    import logging

    if item[0] == WARNING:
        _warn(item, interpreter)
        return
    _, values, message, exc_text, extra = item
    fields = dict(zip(_FIELDS, values, strict=True))
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


def _warn(item: tuple[Any, ...], interpreter: int | None) -> None:
    import warnings

    _, module, qualname, message, filename, lineno = item
    try:
        category = _warning_class(module, qualname)
        try:
            warnings.warn_explicit(message, category, filename, lineno)
        except Warning as exc:  # the host's filters turned it into an error
            import logging

            logging.getLogger("py.warnings").error(
                "%s:%s: %s: %s (in interpreter %s; an error under this process's "
                "warning filters, but the code that warned has carried on)",
                filename,
                lineno,
                type(exc).__name__,
                message,
                interpreter,
            )
    except Exception:  # showwarning, a filter or a py.warnings handler raised
        import logging

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
        import logging

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
