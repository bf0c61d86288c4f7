"""The worker boundary: what the pool knows of a worker, whatever its kind.

A :class:`Worker` is the host side of one worker that runs one call at a time. The
pool and its watcher (:mod:`aiointerp._host._roster`) use only this class's interface:

* :meth:`Worker.start`, :meth:`Worker.aclose` (and :meth:`Worker.kill`, for kinds
  that can be killed);
* :meth:`Worker.send` a job, then :meth:`Worker.receive` its outcome;
* :meth:`Worker.interrupt` the job in flight;
* the attributes :attr:`~Worker.job_id`, :attr:`~Worker.spent`, :attr:`~Worker.tasks`...

Each kind is one subclass in a module of its own (:mod:`aiointerp._kinds._interpreter`); it
provides the *link* (the host end of its channels, :class:`~aiointerp._kinds._interpreter.InterpreterLink`, :class:`~aiointerp._kinds._pipelink.PipeLink`) and
how to launch and finish the worker off the event loop. Everything else (the
protocol of :mod:`aiointerp._wire._protocol`, matching outcomes to jobs, log forwarding)
is here, once.

On trio, every step that must not be torn apart by a ``KeyboardInterrupt`` runs
KI-protected (:func:`aiointerp._kinds._backends.ki_protected`): a Ctrl-C is then delivered at
the caller's next checkpoint, between two steps of the protocol, never inside one.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, ClassVar, Protocol

from anyio.lowlevel import checkpoint

from .._wire import _encoding, _outcomes
from .._wire._errors import BrokenWorkerError, NotShareableError
from .._wire._protocol import (
    DONE,
    EXITED,
    INIT_FAILED,
    JOB,
    LEVELS,
    LINGER,
    LOG,
    QUIT,
    READY,
    REFUSED,
    Job,
    Outcome,
    WorkerConfig,
)
from . import _forwarded
from ._backends import SignalReader, ki_protected

__all__ = ["Link", "Worker", "a_worker", "worker_config"]

logger = logging.getLogger("aiointerp")

#: Switch interval inside workers: the watchdog needs the GIL to inject an interrupt.
SWITCH_INTERVAL = 0.001
#: Forwarded items are handed to the host's logging and streams on the event loop,
#: in slices: after this much time spent on them (seconds), the loop gets a turn.
FORWARD_SLICE = 0.002
#: log items taken from an interpreter worker's queue at a time
_FORWARD_BATCH = 64


def worker_config(
    init_blob: bytes | None,
    forward_logging: bool,
    forward_output: bool = True,
    preload: tuple[str, ...] = (),
) -> WorkerConfig:
    """What every worker of a pool starting now is started with."""
    from .._inside._interrupt import raise_points

    levels = _forwarded.level_table().levels if forward_logging else None
    return WorkerConfig(
        tuple(sys.path),
        _encoding.main_spec(),
        init_blob,
        SWITCH_INTERVAL,
        levels,
        raise_points(),
        forward_output,
        preload,
        # as multiprocessing's spawn passes it (str(): a worker takes shareable values)
        tuple(str(arg) for arg in getattr(sys, "argv", ())),
    )


def a_worker(kind: str) -> str:
    """``an interpreter worker``, ``a process worker``: a worker of *kind*, in messages."""
    return f"{'an' if kind[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {kind} worker"


class Link(Protocol):
    """The host end of a worker's channels (:class:`~aiointerp._kinds._interpreter.InterpreterLink`, :class:`~aiointerp._kinds._pipelink.PipeLink`)."""

    done_fd: int

    def reader(self) -> SignalReader: ...
    def send(self, signal: bytes, payload: tuple[Any, ...] | None = None) -> None: ...
    def take(self) -> Any: ...
    def logs_queued(self) -> int: ...
    def take_logs(self, limit: int) -> list[Any]: ...
    def cancel(self, job_id: int) -> None: ...
    def unread(self) -> bool: ...
    def close(self) -> None: ...


def _refused(args: object, where: str = "argument") -> str:
    """Why the channel refused shareable-looking *args* (never the whole job's repr)."""
    if isinstance(args, tuple):
        for index, item in enumerate(args):
            why = _refused(item, f"{where} {index}")
            if why:
                return why
        return "" if where != "argument" else "the channel refused them"
    if isinstance(args, memoryview):
        try:
            args.nbytes  # noqa: B018 - raises for a released view
        except ValueError:
            return f"{where} is a released memoryview"
    return ""


class Worker:
    """The host side of one worker; used by one call at a time.

    Subclasses set :attr:`kind`, create :attr:`_link` and implement :meth:`_launch`,
    :meth:`_finish` and :meth:`_abandon` (and :meth:`kill` where they can).
    """

    #: the worker kind's name, as in ``InterpreterPool(kind=...)``
    kind: ClassVar[str] = ""
    #: what :attr:`ident` is, in messages
    ident_name: ClassVar[str] = "id"
    #: workers of this kind can be killed (:meth:`kill`), and may die of something
    #: else than their code (the OOM killer, an operator): :meth:`wait_exited`
    killable: ClassVar[bool] = False
    _link: Link

    def __init__(self, config: WorkerConfig) -> None:
        self._preload: tuple[str, ...] = config.preload
        #: the worker sends log records, warnings or output (the same channel)
        self._forwarding = config.levels is not None or config.output
        self._levels = _forwarded.level_table() if config.levels is not None else None
        self._levels_version = self._levels.version if self._levels else 0
        self._reader: SignalReader | None = None
        self._launched = False
        self._exited = False
        self._failure: BaseException | None = None
        #: an id of the worker in messages (the interpreter id, the pid...)
        self.ident: int | None = None
        #: id of the job in flight (its outcome not received yet), or 0
        self.job_id = 0
        #: label of the call in flight, for log messages
        self.job_label = ""
        #: the worker can serve no more calls (died, or was interrupted)
        self.spent = False
        #: calls served
        self.tasks = 0
        #: time (pool clock) since when the worker is idle
        self.idle_since = 0.0
        #: time (pool clock) since when the worker runs its current call
        self.busy_since = 0.0
        #: the kind of worker the caller of the current call asked for (another
        #: kind's worker may serve it: kind="auto")
        self.caller_kind = ""
        #: the worker died before it took the job in flight: none of its code ran
        self.unstarted = False
        #: the functions whose threads keep the worker alive after it quit
        self.lingering: tuple[str, ...] = ()
        #: the module that refused subinterpreters when the worker started, if any
        self.refused: str | None = None
        #: the outcome taken, its call's log items not all handled yet (receive())
        self._outcome: Outcome | None = None
        #: log items queued before that outcome, still to hand over
        self._owed = 0
        #: seconds spent handing log items over since the event loop last had a turn
        self._forward_time = 0.0
        #: EXITED or b"" (end of file), once read: nothing comes after it
        self._end: bytes | None = None

    def __repr__(self) -> str:
        return f"<aiointerp worker {self.ident_name}={self.ident}>"

    # -- what a kind provides

    async def _launch(self) -> None:
        """Start the worker (off the event loop); it signals READY when it is."""
        raise NotImplementedError

    async def _finish(self) -> None:
        """The worker signalled EXITED: reap it (off the event loop), close the link."""
        raise NotImplementedError

    def _abandon(self) -> None:
        """The worker does not end now: reap it whenever it does (from a thread)."""
        raise NotImplementedError

    def kill(self) -> bool:
        """Kill the worker at once, if this kind can (interpreters cannot).

        A killed worker is then :meth:`discard`-ed, not closed.
        """
        return False

    async def wait_exited(self) -> str:
        """Wait until the worker has ended, whatever ended it; say how.

        Only for kinds that are :attr:`killable`.
        """
        raise NotImplementedError

    def discard(self) -> None:
        """Forget a killed worker: reap it and release its link in the background."""
        self._close_reader()
        self._abandon()

    # -- the protocol

    async def _signal(self) -> bytes:
        """The next done-channel signal; log records and LINGER are handled on the way."""
        assert self._reader is not None
        while True:
            if self._end is not None:
                return self._end
            signal = await self._reader.read()
            if signal == LOG:
                await self._forward_logs()
            elif signal == LINGER:
                self.lingering = tuple(self._link.take())
                # what it queued before it stopped serving: the host reads no more
                self._owed = self._link.logs_queued()
                if self._owed:
                    await self._forward_logs(owed=True)
            else:
                if signal in (EXITED, b""):  # the last: read again if the drain raises
                    self._end = signal
                    # what it queued before it ended (the link kept what its
                    # interpreter, destroyed since, queued)
                    self._owed = self._link.logs_queued()
                    if self._owed:
                        await self._forward_logs(owed=True)
                return signal

    async def _forward_logs(self, owed: bool = False) -> None:
        """Hand the records, warnings and output the worker queued to the host.

        *owed*: the :attr:`_owed` items (those queued before an outcome); else
        until the queue is empty, or a signal waits (the outcome: a thread that
        writes faster than the host handles must not keep its call from ending).

        In slices: the event loop gets a turn (a checkpoint) whenever
        :data:`FORWARD_SLICE` was spent here since the last one, so a backlog (what
        threads wrote between calls) never stalls it. Only between two items: a
        cancellation or a Ctrl-C there loses none (the rest is handed over next
        time, before the next outcome at the latest).
        """
        if not self._forwarding:
            return
        link = self._link
        while True:
            limit = min(self._owed, _FORWARD_BATCH) if owed else _FORWARD_BATCH
            began = time.perf_counter()
            items = link.take_logs(limit)
            if owed:
                self._owed = self._owed - len(items) if items else 0
            for item in items:
                _forwarded.handle(item, self.ident, self.kind)
            self._forward_time += time.perf_counter() - began
            if self._forward_time >= FORWARD_SLICE:
                self._forward_time = 0.0
                await checkpoint()
            if owed:
                if not self._owed:
                    return
            elif len(items) < limit or self._reader is None or self._reader.ready():
                return

    @ki_protected
    async def start(self) -> None:
        """Launch the worker and wait (asynchronously) until it is ready.

        :raises BrokenWorkerError: the worker could not be started, or the
            initializer raised (its exception is the ``__cause__``)
        """
        self._reader = self._link.reader()
        await self._launch()
        self._launched = True
        signal = await self._signal()
        if signal == READY:
            return
        self.spent = True
        self._exited = signal in (EXITED, b"")
        if signal == INIT_FAILED:
            outcome = Outcome._make(self._link.take())
            if outcome.status == REFUSED:  # a module refused this kind of worker
                self.refused = outcome.value[1]
            try:
                _outcomes.decode_outcome(outcome, "initializer", self.kind)
            except BaseException as exc:
                raise BrokenWorkerError(self._init_failure(exc)) from exc
        raise BrokenWorkerError(
            f"could not start {a_worker(self.kind)}: {self._why_ended()}"
        ) from self._failure

    def _why_ended(self) -> str:
        """Why the worker ended (for messages): what it raised, or how it died."""
        failure = self._failure
        if failure is None:
            return f"the {self.kind} ended without saying why"
        text = str(failure)
        return f"{type(failure).__name__}: {text}" if text else type(failure).__name__

    def _init_failure(self, exc: BaseException) -> str:
        """What failed before the worker was ready: the import of a ``preload``
        module (the worker noted which on the exception), or the initializer."""
        from .._inside._loop import PRELOAD_NOTE

        text = str(exc).strip()
        if "\n" in text:  # numpy's 30 lines: the last one says what failed
            text = f"{text.splitlines()[-1].strip()} [...] (in full: the cause)"
        what = f"{type(exc).__name__}: {text}"
        # the worker's exception, or its cause under aiointerp's refusal ImportError
        notes = [
            *(getattr(exc, "__notes__", None) or ()),
            *(getattr(exc.__cause__, "__notes__", None) or ()),
        ]
        for name in self._preload:
            if PRELOAD_NOTE.format(name) in notes:
                return (
                    f"a new {self.kind} worker could not import {name!r} "
                    f"(preload): {what}"
                )
        return f"the pool's initializer raised {what}"

    @ki_protected
    def send(self, job: Job) -> None:
        """Hand *job* to the worker: it is in flight from here (:attr:`job_id`).

        :raises NotShareableError: the channel refused the job (nothing was sent)
        """
        levels = self._levels
        if levels is not None and levels.current() != self._levels_version:
            self._levels_version = levels.version  # the host's levels changed
            self._link.send(LEVELS, levels.levels)
        self.job_id = job.job_id
        try:
            self._link.send(JOB, tuple(job))
        except (ValueError, TypeError) as exc:  # e.g. a memoryview released meanwhile
            self.job_id = 0
            raise NotShareableError(
                f"the arguments of {self.job_label or 'the call'} cannot be sent to "
                f"{self.kind} worker {self.ident}: {_refused(job.args)}"
            ) from exc

    @ki_protected
    async def receive(self) -> Outcome:
        """Wait for the outcome of the job in flight.

        An outcome of another job (one nobody waits for any more) is dropped: a
        caller only ever gets the outcome of its own job.

        :raises BrokenWorkerError: the worker died under the job
        """
        while True:
            if self._outcome is None:
                signal = await self._signal()
                if signal != DONE:
                    break
                self._outcome = Outcome._make(self._link.take())
                # the records it logged come before its outcome; the outcome is
                # kept (self._outcome) if a checkpoint of their drain raises
                self._owed = self._link.logs_queued()
            if self._owed:
                await self._forward_logs(owed=True)
            outcome, self._outcome = self._outcome, None
            if outcome.job_id != self.job_id:
                logger.debug("%r: dropped a stale outcome %r", self, outcome)
                continue
            self.job_id = 0
            self.tasks += 1
            if outcome.injected:
                self.spent = True  # an interrupt may have left state broken
            return outcome
        if signal not in (EXITED, b""):  # pragma: no cover - a bug of ours
            raise AssertionError(f"unexpected signal {signal!r} from {self!r}")
        self.job_id = 0
        self.spent = True
        self._exited = True
        self.unstarted = self._link.unread()
        raise BrokenWorkerError(
            f"{self.kind} worker {self.ident} stopped during the call to "
            f"{self.job_label or 'a function'}: {self._why_ended()}"
        ) from self._failure

    def interrupt(self) -> None:
        """Ask the worker's watchdog to interrupt the job in flight, if any."""
        if self.job_id:
            try:
                self._link.cancel(self.job_id)
            except OSError:  # the worker is gone: nothing to interrupt
                pass

    @ki_protected
    async def aclose(self, deadline: float) -> bool:
        """Stop the worker and release what it holds.

        Waits up to *deadline* seconds for a job in flight to end. Returns ``False``
        if the worker did not end: it still runs a call that cannot be interrupted,
        or (:attr:`lingering`) threads the calls started keep it alive; it is then
        reaped whenever it ends.
        """
        import anyio

        if not self._launched:
            self._link.close()
            return True
        if not self._exited:
            try:
                self._link.send(QUIT)
            except OSError:  # pragma: no cover - it is gone already
                pass
        try:
            with anyio.move_on_after(deadline):
                while not self._exited and not self.lingering:
                    signal = await self._signal()
                    if signal == DONE:
                        self._link.take()  # a late outcome nobody waits for
                        self.job_id = 0
                    self._exited = signal in (EXITED, b"")
        except BaseException:
            # cancelled natively (asyncio cancels every task when its loop ends, shield
            # or not): the worker was told to quit; a thread finishes the clean-up
            self._close_reader()
            self._abandon()
            raise
        self._close_reader()
        if not self._exited:
            self._abandon()  # whenever the code (or the threads) that hold it end
            return False
        await self._finish()
        return True

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()

    # -- process exit

    def stop_at_exit(self) -> None:
        """Process exit: interrupt and stop the worker (no event loop is left)."""
        self.interrupt()
        try:
            self._link.send(QUIT)
        except OSError:  # pragma: no cover - released meanwhile
            pass
