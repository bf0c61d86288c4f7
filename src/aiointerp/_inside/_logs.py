"""Log records, warnings and output of workers, handled by the host's logging and streams.

Stdlib only; both ends live here, as in :mod:`aiointerp._wire._encoding`.

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

Output (``forward_output``). The worker's :data:`sys.stdout` and :data:`sys.stderr`
become :class:`_Output` streams whose text travels as items of the same queue, in
order with the records: line-buffered (a write that ends a line, or a big one, is
sent; a partial line waits for the end of its line, a ``flush()``, a write to the
other stream or the end of the call), so a ``print()`` costs one item, not one per
piece. The loop sends what is left before every outcome (:meth:`_Forwarding.end_call`),
so a call's output, partial line included, is written before its result is
returned. The host writes each item to its *current* ``sys.stdout`` or
``sys.stderr``, whatever replaced them (``contextlib.redirect_stdout``, pytest's
``capsys``, a notebook's cell output), and flushes it when the worker's code flushed.

Between calls. The host reads a worker's items only while it waits on that worker
(a call, its start, its close). What threads left running by a call write or log
*between* calls waits meanwhile: in the log queue (interpreters: host memory), or in
the done pipe (processes: the kernel's, 64 KiB on Linux; the host's event loop reads
no more than :data:`aiointerp._kinds._backends.READ_AHEAD` of it ahead on asyncio). So that
an interpreter's idle worker cannot fill the host's memory (a thread printing in a
loop queues about 100 MB/s), an interpreter worker keeps at most :data:`IDLE_BUDGET`
(text, plus :data:`_ITEM_COST` per item) between the end of a call and the start of
the next; beyond it, its items are *dropped* until the next call starts, and counted.
The next call (or the worker's stop) first sends a ``DROPPED`` item with the counts,
which the host reports once: a line on its ``sys.stderr`` for output, a warning on
the ``aiointerp`` logger for records and warnings. Nothing is dropped during a call
(its output and records, its threads' included, all arrive), nor before a worker is
ready. Dropping, not blocking the writer as a terminal would: nobody reads until the
next call, which may be hours away, and a blocked writer would hold the forwarding
lock that every other thread of the worker (the next call's code included) needs to
print or log; an interpreter's queue cannot block either, so a blocked writer would
need one more pipe to be woken. A process worker's writer does wait, on its pipe, as
for a terminal: the kernel bounds what waits, and the host reads whenever a call (or
the pool's close) waits on the worker, so no signal of the loop (``DONE``,
``EXITED``) stays stuck behind it for longer than that.
"""

from __future__ import annotations

import io
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
OUTPUT: Final = 2  # (OUTPUT, 1 or 2 for stdout or stderr, text, flush)
#: (DROPPED, characters of output, records and warnings, budget): what a worker did
#: not send between calls, over its budget
DROPPED: Final = 3

#: what an interpreter worker sends the host between calls before it drops the rest:
#: an estimate of the host memory its queued items take (their text, plus
#: _ITEM_COST or _RECORD_COST each): about 3,500 lines of 70 characters, or 1,300
#: records
IDLE_BUDGET: Final = 2 << 20
#: host memory a queued item takes beyond its text (measured: 520 bytes for output
#: on 3.13 and 3.14, in the queue's cross-interpreter copies)
_ITEM_COST: Final = 512
#: ... and a log record beyond its message (measured: 1,400 bytes)
_RECORD_COST: Final = 1536

#: buffered output beyond which a write is sent even without a newline (characters)
_OUTPUT_BUFFER: Final = 8192

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
        budget: int | None = None,
    ) -> None:
        self.put = put
        self.size = size
        self.done_w = done_w
        self.levels = levels
        #: what may be sent between calls (None: no limit; see "Between calls")
        self.budget = budget
        #: between calls: what is sent counts against the budget (the lock held)
        self.idle = False
        self.spent = 0
        #: the budget ran out: everything is dropped until the next call starts
        self.dropping = False
        self.dropped_text = 0  # characters of output
        self.dropped_records = 0  # records and warnings
        self.named: set[str] = set()  # loggers we gave a level
        #: held to queue an item and look at the size; the root handler's lock too
        self.lock = RLock()
        self.sending = False  # a send() of this thread is under way (lock held)
        #: output not sent yet: pieces of text of one stream (fd 1 or 2), in order
        self.pending: list[str] = []
        self.pending_fd = 1
        self.pending_size = 0
        #: the streams stop() gave back: never freed (see there)
        self.detached_streams: list[_Output] = []

    def send(self, item: tuple[Any, ...]) -> None:
        """Queue *item*; wake the host unless items it has not drained yet are queued.

        The host drains until the queue is empty: an item that finds others queued
        is drained with them (the oldest found an empty queue, and woke the host).
        (Or until it sees a signal waiting, which it reads first: an outcome has it
        drain what was queued before it, a ``b"L"`` the rest, and so does the next
        call, whose :meth:`begin_call` wakes the host if items are left.)
        Under the lock, so no other thread queues between the put and the size.
        A send that runs inside another (a ``__del__`` that logs, run by the garbage
        collector in the middle of ``put``) may see the outer item queued first:
        it wakes the host whatever the size. An interrupt raised between the put and
        the write leaves the item unannounced; the host drains before every outcome.
        """
        with self.lock:  # released if Interrupted is raised in here
            if self.idle and self.budget is not None and not self._admit(item):
                return
            self._queue(item)

    def _queue(self, item: tuple[Any, ...]) -> None:
        """:meth:`send`, the lock held, the budget passed."""
        nested = self.sending
        self.sending = True
        try:
            self.put(item)
            if nested or self.size() == 1:
                os.write(self.done_w, b"L")  # _protocol.LOG
        finally:
            self.sending = nested

    def _admit(self, item: tuple[Any, ...]) -> bool:
        """Between calls: may *item* go to the host? If not, count it (lock held)."""
        kind = item[0]
        if not self.dropping:
            if kind == OUTPUT:
                cost = len(item[2]) + _ITEM_COST
            elif kind == LOG:
                cost = len(item[2]) + len(item[3] or "") + _RECORD_COST
            else:
                cost = len(item[3]) + len(item[4]) + _ITEM_COST
            assert self.budget is not None
            if self.spent + cost <= self.budget:
                self.spent += cost
                return True
            self.dropping = True  # one gap, until the next call: never a few holes
        if kind == OUTPUT:
            self.dropped_text += len(item[2])
        else:
            self.dropped_records += 1
        return False

    def write(self, fd: int, text: str) -> None:
        """Output of the worker's code: queue *text*, send it at a line's end."""
        with self.lock:
            if self.pending and fd != self.pending_fd:
                self.send_output(False)  # the other stream's text goes first
            self.pending.append(text)
            self.pending_fd = fd
            self.pending_size += len(text)
            if "\n" in text or self.pending_size >= _OUTPUT_BUFFER:
                self.send_output(False)

    def send_output(self, flush: bool) -> None:
        """Send the pending output (with *flush*: and have the host flush its stream)."""
        with self.lock:
            if not self.pending and not flush:
                return
            text = "".join(self.pending)
            self.pending.clear()
            self.pending_size = 0
            self.send((OUTPUT, self.pending_fd, text, flush))

    def end_call(self) -> None:
        """The loop is about to send an outcome (or READY): what the code wrote goes
        first. From here until :meth:`begin_call`, the worker is between calls.

        Never raises :class:`OSError`: a host that is gone is the loop's to notice.
        """
        if self.pending:
            try:
                self.send_output(False)
            except OSError:
                pass
        with self.lock:
            self.idle = True
            self.spent = 0

    def begin_call(self) -> None:
        """A call starts: nothing is dropped any more; report what was, first."""
        with self.lock:
            self.idle = self.dropping = False
            self.spent = 0
            self._report()

    def _report(self) -> None:
        """The host reads again: say what was dropped, and wake it if items wait
        that it was not told of (left over by the last call's drain, which takes
        only what was queued before the outcome). Never raises :class:`OSError`.
        """
        try:
            if self.dropped_text or self.dropped_records:
                item = (DROPPED, self.dropped_text, self.dropped_records, self.budget)
                self.dropped_text = self.dropped_records = 0
                self._queue(item)
            if self.size():  # a spare wake-up costs the host one empty drain
                os.write(self.done_w, b"L")  # _protocol.LOG
        except OSError:
            pass

    def stop(self) -> None:
        """The loop ends: send what is left, give the streams back.

        What is written from here on (threads that outlive the loop, the flush of
        the streams when the worker ends) goes to the replaced streams: the host
        may not read this worker's items any more.
        """
        self.end_call()  # and from here on, the budget applies: nobody may read
        with self.lock:
            self._report()  # the host reads until the worker ends
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, _Output) and stream._forwarding is self:
                stream.detached = True
                # kept alive: a print() of another thread under way may hold it
                # without a reference of its own (3.13.0's print() borrows
                # sys.stdout: freed under it, the process crashed)
                self.detached_streams.append(stream)
                setattr(sys, name, stream._replaced)

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
                if forwarding.dropping:  # between calls, over the budget (lock held)
                    forwarding.dropped_records += 1
                    return
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


class _Output(io.TextIOBase):
    """The worker's ``sys.stdout`` or ``sys.stderr`` with ``forward_output``.

    Text only (as :class:`io.TextIOWrapper`: ``write(bytes)`` raises
    :class:`TypeError`); there is no ``buffer``. :meth:`fileno` is the replaced
    stream's, so code that hands the descriptor to a child process or to
    :mod:`faulthandler` still works (what is written there is not forwarded).
    """

    def __init__(self, forwarding: _Forwarding, fd: int, replaced: Any) -> None:
        super().__init__()
        self._forwarding = forwarding
        self._fd = fd
        self._replaced = replaced
        #: the loop ended: what is still written here goes to the replaced stream
        self.detached = False

    @property
    def name(self) -> str:
        return "<stdout>" if self._fd == 1 else "<stderr>"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False  # the host's stream, wherever it goes now, is not ours to ask

    def fileno(self) -> int:
        if self._replaced is None:
            raise io.UnsupportedOperation("fileno")
        return int(self._replaced.fileno())

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if self.detached:  # a reference kept past the loop's end (a log handler's)
            if self._replaced is not None:
                self._replaced.write(text)
            return len(text)
        if text:
            self._forwarding.write(self._fd, text)
        return len(text)

    def flush(self) -> None:
        # close() flushes, and so does __del__: not once the loop ended
        if not self.closed and not self.detached:
            self._forwarding.send_output(True)
        elif self.detached and self._replaced is not None:
            self._replaced.flush()


_forwarding: _Forwarding | None = None


def install(
    put: Callable[[Any], None],
    size: Callable[[], int],
    done_w: int,
    levels: Levels | None,
    output: bool = False,
    budget: int | None = None,
) -> _Forwarding:
    """Forward this worker's log records and warnings (unless *levels* is ``None``)
    and, with *output*, what it writes to ``sys.stdout``/``sys.stderr`` (call once).
    Between calls, send at most *budget* (see "Between calls" above; None: all).
    """
    global _forwarding
    forwarding = _forwarding = _Forwarding(
        put, size, done_w, levels or (0, 0, ()), budget
    )
    if output:
        sys.stdout = _Output(forwarding, 1, sys.stdout)
        sys.stderr = _Output(forwarding, 2, sys.stderr)
    if levels is None:
        return forwarding
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
    import logging

    if item[0] == WARNING:
        _warn(item, interpreter, kind)
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
        import logging

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
    """Say once what a worker dropped between two calls (see "Between calls")."""
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
        import logging

        try:
            logging.getLogger("aiointerp").warning(
                "%s log records and warnings from %s dropped: %s", records, worker, why
            )
        except Exception:  # a handler of the host's that raises
            _report_error(logging.makeLogRecord({"name": "aiointerp", "msg": why}))


def _warn(item: tuple[Any, ...], interpreter: int | None, kind: str) -> None:
    import warnings

    _, module, qualname, message, filename, lineno = item
    try:
        category = _warning_class(module, qualname)
        try:
            warnings.warn_explicit(message, category, filename, lineno)
        except Warning as exc:  # the host's filters turned it into an error
            import logging

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
