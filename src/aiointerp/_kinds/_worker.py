"""The worker boundary: what the pool knows of a worker, whatever its kind.

A :class:`Worker` is the host side of one worker that runs one call at a time. The
pool and its roster (:mod:`aiointerp._host._roster`) use only this interface:

* :meth:`Worker.start`, :meth:`Worker.aclose` (and :meth:`Worker.kill`, for kinds
  that can be killed);
* :meth:`Worker.send` a job, then :meth:`Worker.receive` its outcome (only its own:
  a stale outcome is dropped);
* :meth:`Worker.interrupt` the job in flight;
* :attr:`Worker.alive`, the one answer to "is this worker alive?", and
  :attr:`Worker.spent`, :attr:`Worker.job_id`, :attr:`Worker.tasks`...

Each kind is a subclass in a module of its own (:mod:`aiointerp._kinds._interpreter`,
:mod:`aiointerp._kinds._process`): its link (the host end of its channels), how it
is launched, reaped and abandoned, and the event that ends it. On trio a Ctrl-C
never lands inside a step of the protocol, only between two.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Final, Protocol

from .._wire import _outcomes
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
from ._config import a_worker
from ._failures import init_failure, refused
from ._relay import Relay

__all__ = ["Link", "Worker"]

logger = logging.getLogger("aiointerp")

#: a worker's life: its thread or process does not exist yet, exists, has ended
_NEW: Final = 0
_RUNNING: Final = 1
_ENDED: Final = 2


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
    #: hands what the worker forwards to the host (made when it starts)
    _relay: Relay

    def __init__(self, config: WorkerConfig) -> None:
        self._preload: tuple[str, ...] = config.preload
        #: the worker sends log records, warnings or output (the same channel)
        self._forwarding = config.levels is not None or config.output
        self._levels = _forwarded.level_table() if config.levels is not None else None
        self._levels_version = self._levels.version if self._levels else 0
        self._reader: SignalReader | None = None
        self._launched = False
        #: _NEW, _RUNNING, _ENDED: only _began() and _ended() change it
        self._life = _NEW
        #: retired for cause (its start failed, an interrupt, killed, broken)
        self._spent = False
        self._failure: BaseException | None = None
        #: an id of the worker in messages (the interpreter id, the pid...)
        self.ident: int | None = None
        #: id of the job in flight (its outcome not received yet), or 0
        self.job_id = 0
        #: label of the call in flight, for log messages
        self.job_label = ""
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
        #: EXITED or b"" (end of file), once read on the done channel: nothing comes
        #: after it (the worker said its last; it may still be ending)
        self._end: bytes | None = None

    def __repr__(self) -> str:
        return f"<aiointerp worker {self.ident_name}={self.ident}>"

    # -- liveness

    @property
    def alive(self) -> bool:
        """The worker's thread or process exists and has not ended.

        False before it was launched, and for good once its kind reported its end
        (:meth:`_ended`). Read from any thread.
        """
        return self._life == _RUNNING

    @property
    def spent(self) -> bool:
        """The worker serves no more calls: it is not alive, or it was retired for
        cause (its start failed, an interrupt may have left its state broken, it
        was killed, its channel broke)."""
        return self._spent or not self.alive

    def _began(self) -> None:
        """The kind's thread or process exists (called once, by the kind)."""
        if self._life == _NEW:
            self._life = _RUNNING

    def _ended(self) -> None:
        """The one event that ends the worker happened: its thread ended, its
        process was reaped. The only place :attr:`alive` becomes false (from any
        thread; idempotent)."""
        self._life = _ENDED

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
                await self._forward()
            elif signal == LINGER:
                self.lingering = tuple(self._link.take())
                # what it queued before it stopped serving: the host reads no more
                if self._relay.owe():
                    await self._forward(owed=True)
            else:
                if signal in (EXITED, b""):  # the last: read again if the drain raises
                    self._end = signal
                    # what it queued before it ended (the link kept what its
                    # interpreter, destroyed since, queued)
                    if self._relay.owe():
                        await self._forward(owed=True)
                return signal

    async def _forward(self, owed: bool = False) -> None:
        """Hand what the worker forwarded to the host (:meth:`Relay.forward`); not
        owed items stop as soon as a signal waits."""
        reader = self._reader
        await self._relay.forward(
            self.ident,
            self.kind,
            owed=owed,
            more=lambda: reader is None or reader.ready(),
        )

    @ki_protected
    async def start(self) -> None:
        """Launch the worker and wait (asynchronously) until it is ready.

        :raises BrokenWorkerError: the worker could not be started, or the
            initializer raised (its exception is the ``__cause__``)
        """
        self._relay = Relay(self._link, self._forwarding)
        self._reader = self._link.reader()
        await self._launch()
        self._launched = True
        signal = await self._signal()
        if signal == READY:
            return
        self._spent = True
        if signal == INIT_FAILED:
            outcome = Outcome._make(self._link.take())
            if outcome.status == REFUSED:  # a module refused this kind of worker
                self.refused = outcome.value[1]
            try:
                _outcomes.decode_outcome(outcome, "initializer", self.kind)
            except BaseException as exc:
                raise BrokenWorkerError(
                    init_failure(exc, self._preload, self.kind)
                ) from exc
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
                f"{self.kind} worker {self.ident}: {refused(job.args)}"
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
                self._relay.owe()
            if self._relay.owed:
                await self._forward(owed=True)
            outcome, self._outcome = self._outcome, None
            if outcome.job_id != self.job_id:
                logger.debug("%r: dropped a stale outcome %r", self, outcome)
                continue
            self.job_id = 0
            self.tasks += 1
            if outcome.injected:
                self._spent = True  # an interrupt may have left state broken
            return outcome
        # READY and INIT_FAILED end start(): only the worker's end comes here
        assert signal in (EXITED, b""), f"unexpected signal {signal!r} from {self!r}"
        self.job_id = 0
        self._spent = True
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
        if self._end is None:
            # a link's send never fails for a worker that is gone: a process's
            # pipe link drops it (its done pipe says why it ended), and an
            # interpreter's pipes are the host's own
            self._link.send(QUIT)
        try:
            with anyio.move_on_after(deadline):
                while self._end is None and not self.lingering:
                    if await self._signal() == DONE:
                        self._link.take()  # a late outcome nobody waits for
                        self.job_id = 0
        except BaseException:
            # cancelled natively (asyncio cancels every task when its loop ends, shield
            # or not): the worker was told to quit; a thread finishes the clean-up
            self._close_reader()
            self._abandon()
            raise
        self._close_reader()
        if self._end is None:
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
        # registered: its link is open (see aclose for a worker that is gone)
        self._link.send(QUIT)
