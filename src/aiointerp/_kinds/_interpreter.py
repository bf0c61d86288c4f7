"""The interpreter kind: a subinterpreter served by one OS thread of its own.

The thread creates the interpreter, runs :func:`aiointerp._inside._loop.serve` in it until
told to quit, and destroys it; the event loop talks to it through pipes and
cross-interpreter queues (:class:`InterpreterLink`), so a call
costs no thread hop and no polling. Creating and destroying the interpreter happen on
that thread, and starting and joining the thread on anyio's worker threads: the event
loop never blocks on them. An interpreter cannot be killed: code that cannot be
interrupted keeps it (and its thread) until it returns.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from .._wire import _interp, _protocol
from .._wire._protocol import WorkerConfig
from . import _exit
from ._worker import Worker

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._inside._ends import InterpreterEnds
    from ._backends import SignalReader

__all__ = ["InterpreterLink", "InterpreterWorker"]

logger = logging.getLogger("aiointerp")


class InterpreterWorker(Worker):
    """One subinterpreter (own GIL) and the OS thread that serves it."""

    kind = "interpreter"
    ident_name = "interp"
    _link: InterpreterLink

    def __init__(self, config: WorkerConfig) -> None:
        super().__init__(config)
        self._config = tuple(config)
        self._link = InterpreterLink(self._forwarding)
        self._thread = threading.Thread(target=self._serve, name="aiointerp-worker")

    def _serve(self) -> None:
        """The worker's thread: create the interpreter, serve, destroy it.

        The thread's end is the worker's: its very last step reports it
        (:meth:`_ended`), after EXITED.
        """
        self._began()
        try:
            self._run()
        finally:
            self._ended()

    def _run(self) -> None:
        link = self._link
        try:
            interp = _interp.create()
        except BaseException as exc:
            self._failure = exc
            link.write_exited()
            return
        self.ident = interp.id
        try:
            interp.run_worker(self._config, link.ends)
        except BaseException as exc:
            self._failure = exc
        finally:
            link.drain()  # what it queued must outlive the interpreter
            try:
                interp.close()  # waits for the threads the calls left running
            except Exception as exc:  # a thread of user code lingers...
                logger.warning("could not destroy interpreter %s: %r", interp.id, exc)
            link.write_exited()

    async def _launch(self) -> None:
        _exit.register(self)
        try:
            await anyio.to_thread.run_sync(self._thread.start)
        except BaseException:
            if self._thread.ident is None:  # it did not start: nothing will reap it
                _exit.unregister(self)
            raise

    async def _finish(self) -> None:
        # it wrote EXITED as its very last step: the join is short, but not ours to
        # do on the event loop
        await anyio.to_thread.run_sync(self._thread.join)
        self._release()

    def _abandon(self) -> None:
        def reap() -> None:
            self._thread.join()
            self._release()

        if self._thread.ident is None:  # never started
            self._release()
            return
        threading.Thread(target=reap, name="aiointerp-reaper", daemon=True).start()

    def _release(self) -> None:
        _exit.unregister(self)  # first: the exit hook must not write to closed fds
        self._link.close()

    # -- for the process-exit hook (aiointerp._kinds._exit)

    def join(self, timeout: float | None) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)


class InterpreterLink:
    """The host end of an interpreter worker's channels: pipes and queues it owns.

    Created on the event loop (cheap: three pipes, two or three queues). The worker
    end opens the same fds and queues from inside the interpreter.
    """

    def __init__(self, forward_logging: bool) -> None:
        fds: list[int] = []
        try:
            for _ in range(3):
                fds.extend(os.pipe())
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        self.fds = tuple(fds)
        self._job_r, self._job_w, self.done_fd, self._done_w = fds[:4]
        self._cancel_r, self._cancel_w = fds[4:]
        os.set_blocking(self.done_fd, False)
        self._job_qid = _interp.create_queue()
        self._result_qid = _interp.create_queue()
        self._put, _ = _interp.open_queue(self._job_qid)
        _, self._get = _interp.open_queue(self._result_qid)
        self._log_qid: int | None = None
        self._get_log: Callable[[], Any] | None = None
        self._logs_queued: Callable[[], int] = int
        if forward_logging:
            self._log_qid = _interp.create_queue()
            _, self._get_log = _interp.open_queue(self._log_qid)
            self._logs_queued = _interp.queue_size(self._log_qid)
        #: payloads drained by the worker's thread before the interpreter that put
        #: them is destroyed (queue items do not outlive it); guarded by ``lock``
        self.leftovers: deque[Any] | None = None
        #: log items drained so, the host not having taken them yet
        self.log_leftovers: deque[Any] = deque()
        self.lock = threading.Lock()
        self._open = True

    @property
    def ends(self) -> InterpreterEnds:
        """What the worker end is built from, inside the interpreter."""
        return (
            self._job_r,
            self._done_w,
            self._cancel_r,
            self._cancel_w,
            self._job_qid,
            self._result_qid,
            self._log_qid,
        )

    def reader(self) -> SignalReader:
        """The done channel's reader (on the event loop: host side only)."""
        from ._backends import signal_reader

        return signal_reader(self.done_fd)

    def send(self, signal: bytes, payload: tuple[Any, ...] | None = None) -> None:
        """Send a job-channel message (the payload first, then its signal).

        :raises ValueError: the queue refused the payload (nothing was sent)
        """
        if payload is not None:
            self._put(payload)
        os.write(self._job_w, signal)

    def take(self) -> Any:
        """The payload announced by the done-channel signal just read."""
        with self.lock:
            if self.leftovers:
                return self.leftovers.popleft()
            return self._get()

    def logs_queued(self) -> int:
        """How many log items are queued (0 once the link is closed)."""
        if not self._open:
            return 0
        return len(self.log_leftovers) + self._logs_queued()

    def take_logs(self, limit: int) -> list[Any]:
        """Up to *limit* of the log items queued (first those :meth:`drain` kept)."""
        items: list[Any] = []
        get = self._get_log
        if get is None or not self._open:
            return items
        with self.lock:
            leftovers = self.log_leftovers
            while leftovers and len(items) < limit:
                items.append(leftovers.popleft())
            # only we take: what the count says is there
            for _ in range(min(limit - len(items), self._logs_queued())):
                try:
                    items.append(get())
                except Exception:  # its interpreter is gone: its items with it
                    break
        return items

    def drain(self) -> None:
        """Keep the queued payloads and log items: the interpreter that put them is
        going away (its queue items would go with it).

        Called by the worker's thread, after the loop ended and before it destroys
        the interpreter. The log items are at most what the worker queued since the
        host last read, bounded (:data:`aiointerp._wire._logitems.IDLE_BUDGET`).
        """
        with self.lock:
            if self.leftovers is None:
                self.leftovers = deque()
            for get, kept in (
                (self._get, self.leftovers),
                (self._get_log, self.log_leftovers),
            ):
                while get is not None:
                    try:
                        kept.append(get())
                    except Exception:  # empty
                        break

    def unread(self) -> bool:
        """An interpreter's thread takes every job it is sent (it cannot die first)."""
        return False

    def cancel(self, job_id: int) -> None:
        """Ask the watchdog to interrupt *job_id* (if it is still the running job)."""
        os.write(self._cancel_w, job_id.to_bytes(_protocol.JOB_ID_SIZE, "little"))

    def write_exited(self) -> None:
        """The worker's thread ended the worker: its very last signal."""
        os.write(self._done_w, _protocol.EXITED)

    def close(self) -> None:
        """Close the fds and destroy the queues (the worker's thread has ended)."""
        if not self._open:
            return
        self._open = False
        for fd in self.fds:
            os.close(fd)
        _interp.destroy_queue(self._job_qid)
        _interp.destroy_queue(self._result_qid)
        if self._log_qid is not None:
            _interp.destroy_queue(self._log_qid)
