"""The worker half of log, warning and output forwarding (stdlib only).

:func:`install` runs once when a worker starts. From then on, the worker's log
records (of loggers at the host's levels: a record the host would drop is never
built), the warnings it shows (after its own filters) and, with ``forward_output``,
what it writes to :data:`sys.stdout` and :data:`sys.stderr` travel to the host as
the items of :mod:`aiointerp._wire._logitems`, in order, each announced by ``LOG`` on
the done channel. The host half is :mod:`aiointerp._kinds._forwarded`.

Before the loop sends an outcome (:meth:`Forwarding.end_call`), everything the call
wrote is queued, partial line included. Between calls (from an outcome to the next
call's start) an interpreter worker queues at most
:data:`~aiointerp._wire._logitems.IDLE_BUDGET`; beyond it, items are dropped until
the next call starts, which first sends a ``DROPPED`` item with the counts. Nothing
is dropped during a call, nor before a worker is ready. A process worker drops
nothing: its writer waits on its pipe, as for a terminal.
"""

from __future__ import annotations

import os
import sys
from _thread import RLock

from .._wire._logitems import DROPPED, FIELDS, LOG, OUTPUT, WARNING
from ._output import Output

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, Final

    from .._wire._logitems import Levels

__all__ = ["Forwarding", "install"]

# What the budget counts is an estimate of the host memory an interpreter worker's
# queued items take: their text, plus _ITEM_COST each (measured: 520 bytes for output
# on 3.13 and 3.14, in the queue's cross-interpreter copies), or _RECORD_COST for a
# log record beyond its message (measured: 1,400 bytes).
_ITEM_COST: Final = 512
_RECORD_COST: Final = 1536

#: buffered output beyond which a write is sent even without a newline (characters)
_OUTPUT_BUFFER: Final = 8192

#: attributes of every LogRecord: what is left in a record's __dict__ is `extra=`
_STANDARD: Final = frozenset(
    (*FIELDS, "msg", "args", "exc_info", "exc_text", "message", "asctime")
)
_SIMPLE: Final = (str, int, float, bool, type(None))


class Forwarding:
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
        # The host reads a worker's items only while it waits on that worker (a call,
        # its start, its close): what threads left running by a call write or log
        # between calls waits meanwhile, in the log queue (interpreters: the host's
        # memory; a thread printing in a loop queues about 100 MB/s) or in the done
        # pipe (processes: the kernel bounds it). Hence a budget for interpreters.
        # Dropping, not blocking the writer as a terminal would: nobody reads until
        # the next call, which may be hours away, and a blocked writer would hold
        # the lock that every other thread of the worker (the next call's code
        # included) needs to print or log; an interpreter's queue cannot block
        # either, so a blocked writer would need one more pipe to be woken.
        #: what may be sent between calls (None: no limit)
        self.budget = budget
        #: between calls: what is sent counts against the budget (the lock held)
        self.idle = False
        self.spent = 0
        #: the budget ran out: everything is dropped until the next call starts
        self.dropping = False
        self.dropped_text = 0  # characters of output
        self.dropped_records = 0  # records and warnings
        self.named: set[str] = set()  # loggers we gave a level
        #: held to queue an item and look at the queue's size; the root handler's lock
        #: too, so records and warnings take the same one: two threads that queued at
        #: once would each see the other's item, and neither would wake the host
        self.lock = RLock()
        self.sending = False  # a send() of this thread is under way (lock held)
        #: output not sent yet: pieces of text of one stream (fd 1 or 2), in order
        self.pending: list[str] = []
        self.pending_fd = 1
        self.pending_size = 0
        #: the streams stop() gave back: never freed (see there)
        self.detached_streams: list[Output] = []

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
            if isinstance(stream, Output) and stream._forwarding is self:
                stream.detached = True
                # kept alive: a print() of another thread under way may hold it
                # without a reference of its own (3.13.0's print() borrows
                # sys.stdout: freed under it, the process crashed)
                self.detached_streams.append(stream)
                setattr(sys, name, stream._replaced)

    def set_levels(self, levels: Levels) -> None:
        """The host's levels changed: apply *levels* (once ``logging`` is configured)."""
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
    values = tuple(_shareable(fields.get(name)) for name in FIELDS)
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

    def __init__(self, forwarding: Forwarding) -> None:
        self.forwarding = forwarding

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(name)
        if spec is None or spec.loader is None:  # no finder left for it, or odd
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


_forwarding: Forwarding | None = None


def install(
    put: Callable[[Any], None],
    size: Callable[[], int],
    done_w: int,
    levels: Levels | None,
    output: bool = False,
    budget: int | None = None,
) -> Forwarding:
    """Forward this worker's log records and warnings (unless *levels* is ``None``)
    and, with *output*, what it writes to ``sys.stdout``/``sys.stderr`` (call once).
    Between calls, send at most *budget* (None: all).
    """
    global _forwarding
    forwarding = _forwarding = Forwarding(
        put, size, done_w, levels or (0, 0, ()), budget
    )
    if output:
        sys.stdout = Output(forwarding, 1, sys.stdout)
        sys.stderr = Output(forwarding, 2, sys.stderr)
    if levels is None:
        return forwarding
    logging = sys.modules.get("logging")
    if logging is not None:  # imported by a sitecustomize, for one
        forwarding.configure(logging)
    else:
        sys.meta_path.insert(0, _ImportHook(forwarding))
    import warnings

    warnings.showwarning = _show_warning
    return forwarding
