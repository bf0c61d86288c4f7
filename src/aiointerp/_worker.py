"""Host side of one worker: an interpreter, the OS thread that serves it, its pipes.

The thread enters the interpreter once and runs :func:`aiointerp._inside.serve` there
until told to quit; the event loop talks to it through pipes (read by a
:class:`~aiointerp._backends.SignalReader`) and two cross-interpreter queues, so a call
costs no thread hop and no polling. Creating and destroying the interpreter happen on that thread too:
the event loop never blocks on them.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio

from . import _interp, _logs, _transport
from ._backends import SignalReader, signal_reader
from ._errors import BrokenWorkerError

logger = logging.getLogger("aiointerp")

#: Switch interval inside workers: the watchdog needs the GIL to inject an interrupt.
_SWITCH_INTERVAL = 0.001
#: How long process exit waits for workers still running when the interpreter exits.
_EXIT_DEADLINE = 5.0

_live: set[Worker] = set()
_live_lock = threading.Lock()


@functools.cache
def _raise_points() -> tuple[tuple[int, ...], int]:
    from ._interrupt import raise_points

    return raise_points()


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What every worker of a pool is started with."""

    sys_path: tuple[str, ...]
    main_spec: tuple[str, str] | None
    init_blob: bytes | None
    #: forward the worker's log records and warnings to the host's logging
    forward_logging: bool = True

    @classmethod
    def of_host(cls, init_blob: bytes | None, forward_logging: bool) -> Bootstrap:
        return cls(tuple(sys.path), _transport.main_spec(), init_blob, forward_logging)


class Worker:
    """One interpreter served by one OS thread; used by one call at a time."""

    def __init__(self, bootstrap: Bootstrap) -> None:
        fds: list[int] = []
        try:
            for _ in range(3):
                fds.extend(os.pipe())
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        self._job_r, self._job_w, self._done_r, self._done_w = fds[:4]
        self._cancel_r, self._cancel_w = fds[4:]
        os.set_blocking(self._done_r, False)
        self._job_qid = _interp.create_queue()
        self._result_qid = _interp.create_queue()
        self._put_job, _ = _interp.open_queue(self._job_qid)
        _, self._get_queued = _interp.open_queue(self._result_qid)
        self._log_qid: int | None = None
        self._levels = _logs.level_table() if bootstrap.forward_logging else None
        levels = None
        if self._levels is not None:
            self._log_qid = _interp.create_queue()
            _, self._get_log = _interp.open_queue(self._log_qid)
            self._levels_version = self._levels.current()
            levels = self._levels.levels
        # outcomes drained by the thread before it destroys the interpreter: queue
        # items do not outlive the interpreter that put them
        self._leftovers: deque[_transport.Outcome] = deque()
        self._outcome_lock = threading.Lock()
        self._code = (
            "import sys\n"
            f"sys.path[:] = {list(bootstrap.sys_path)!r}\n"
            "from aiointerp._inside import serve\n"
            f"serve({self._job_r}, {self._done_w}, {self._cancel_r}, {self._cancel_w},"
            f" {self._job_qid}, {self._result_qid}, {bootstrap.main_spec!r},"
            f" {bootstrap.init_blob!r}, {_SWITCH_INTERVAL!r}, {self._log_qid!r},"
            f" {levels!r}, {_raise_points()!r})\n"
        )
        self._thread = threading.Thread(target=self._serve, name="aiointerp-worker")
        self._reader = SignalReader(self._done_r)  # replaced on the loop by start()
        self._failure: BaseException | None = None
        self._closed = False
        #: interpreter id, once created
        self.interp_id: int | None = None
        #: id of the job in flight (its outcome not yet received), or 0
        self.job_id = 0
        #: label of the call in flight, for log messages
        self.job_label = ""
        #: the worker can serve no more calls (died, or was interrupted)
        self.spent = False
        #: calls served
        self.tasks = 0
        #: time (pool clock) since when the worker is idle
        self.idle_since = 0.0

    def __repr__(self) -> str:
        return f"<aiointerp worker interp={self.interp_id}>"

    # -- worker thread

    def _serve(self) -> None:
        try:
            interp = _interp.create()
        except BaseException as exc:
            self._failure = exc
            os.write(self._done_w, b"X")
            return
        self.interp_id = interp.id
        try:
            interp.exec(self._code)
        except BaseException as exc:
            self._failure = exc
        finally:
            with self._outcome_lock:
                while True:
                    try:
                        self._leftovers.append(self._get_queued())
                    except Exception:  # empty
                        break
            self._forward_logs()  # from this thread: nobody may read the pipe now
            try:
                interp.close()
            except Exception as exc:  # pragma: no cover - a thread of user code lingers
                logger.warning("could not destroy interpreter %s: %r", interp.id, exc)
            os.write(self._done_w, b"X")

    # -- event loop side

    def _get_outcome(self) -> _transport.Outcome:
        with self._outcome_lock:
            if self._leftovers:
                return self._leftovers.popleft()
            outcome: _transport.Outcome = self._get_queued()
            return outcome

    async def _signal(self) -> bytes:
        """The next signal of the worker; forwarded log records are handled on the way."""
        signal = await self._reader.read()
        while signal == b"L":
            self._forward_logs()
            signal = await self._reader.read()
        return signal

    def _forward_logs(self) -> None:
        """Hand the records and warnings the worker queued to the host's logging."""
        if self._log_qid is None:
            return
        while True:
            try:
                item = self._get_log()
            except Exception:  # empty (or its interpreter is gone)
                return
            _logs.handle(item, self.interp_id)

    async def start(self) -> None:
        """Start the thread and wait (asynchronously) until the worker is ready.

        :raises BrokenWorkerError: the interpreter could not be created, or the
            initializer raised (its exception is the ``__cause__``)
        """
        self._reader = signal_reader(self._done_r)
        with _live_lock:
            _live.add(self)
        self._thread.start()
        signal = await self._signal()
        if signal == b"R":
            return
        self.spent = True
        self._closed = signal == b"X"  # the thread already ended: nothing to stop
        if signal == b"F":
            try:
                _transport.decode_outcome(self._get_outcome(), "initializer")
            except BaseException as exc:
                raise BrokenWorkerError(
                    f"the pool's initializer raised {type(exc).__name__}: {exc}"
                ) from exc
        raise BrokenWorkerError(
            f"could not start a worker interpreter: {self._failure!r}"
        ) from self._failure

    async def run(self, job: _transport.Job) -> _transport.Outcome:
        """Send *job* and wait for its outcome.

        Cancellation is left to the caller: on cancel the job is still in flight
        (:attr:`job_id` is set) and the caller decides to :meth:`interrupt` it and
        :meth:`receive` with a grace period.
        """
        levels = self._levels
        if levels is not None and levels.current() != self._levels_version:
            self._levels_version = levels.version  # the host's levels changed
            self._put_job(levels.levels)
            os.write(self._job_w, b"V")
        self._put_job(job)
        # in flight from here, before the write: trio raises KeyboardInterrupt at
        # any check of the eval loop, including the one right after os.write
        # returns, and the caller must then find the job to interrupt
        self.job_id = job[0]
        os.write(self._job_w, b"J")
        return await self.receive()

    async def receive(self) -> _transport.Outcome:
        """Wait for the outcome of the job in flight.

        :raises BrokenWorkerError: the worker died under the job
        """
        signal = await self._signal()
        if signal == b"D":
            self.job_id = 0
            outcome: _transport.Outcome = self._get_outcome()
            self.tasks += 1
            if outcome[4]:
                self.spent = True  # an injected interrupt may have left state broken
            return outcome
        self.job_id = 0
        self.spent = True
        self._closed = signal == b"X"
        raise BrokenWorkerError(
            f"worker interpreter {self.interp_id} stopped during the call: "
            f"{self._failure!r}"
        ) from self._failure

    def interrupt(self) -> None:
        """Ask the worker's watchdog to interrupt the job in flight, if any."""
        if self.job_id:
            os.write(self._cancel_w, self.job_id.to_bytes(8, "little"))

    async def aclose(self, deadline: float) -> bool:
        """Stop the worker, destroy its interpreter, join its thread, close its fds.

        Waits up to *deadline* seconds for a job in flight to end; returns ``False``
        if it did not: a thread then finishes the clean-up when the code returns (the
        process-exit handler reports it if that is never).
        """
        if self._thread.ident is None:  # never started
            self._release()
            return True
        if not self._closed:
            os.write(self._job_w, b"Q")
        try:
            with anyio.move_on_after(deadline):
                while not self._closed:
                    signal = await self._signal()
                    if signal == b"D":
                        self._get_outcome()  # a late outcome nobody waits for
                        self.job_id = 0
                    self._closed = signal in (b"X", b"")
        except BaseException:
            # cancelled natively (asyncio cancels every task when its loop ends, shield
            # or not): the worker was told to quit; a thread finishes the clean-up
            self._reader.close()
            self._reap_later()
            raise
        self._reader.close()
        if not self._closed:
            self._reap_later()  # whenever the code that holds it returns
            return False
        self._thread.join()  # it wrote b"X" as its very last step
        self._release()
        return True

    def _reap_later(self) -> None:
        def reap() -> None:
            self._thread.join()
            self._release()

        threading.Thread(target=reap, name="aiointerp-reaper", daemon=True).start()

    def _release(self) -> None:
        with _live_lock:
            _live.discard(self)  # first: the exit hook must not write to closed fds
        for fd in (
            self._job_r,
            self._job_w,
            self._done_r,
            self._done_w,
            self._cancel_r,
            self._cancel_w,
        ):
            os.close(fd)
        _interp.destroy_queue(self._job_qid)
        _interp.destroy_queue(self._result_qid)
        if self._log_qid is not None:
            _interp.destroy_queue(self._log_qid)

    def stop_at_exit(self) -> None:
        """Process exit: interrupt and stop the worker (no event loop is left)."""
        try:
            self.interrupt()
            os.write(self._job_w, b"Q")
        except OSError:  # pragma: no cover - released meanwhile
            pass


def _at_exit() -> None:
    """Stop workers that no pool closed before the interpreter exits.

    Runs before :mod:`threading` joins the worker threads, which CPython requires to
    end before it can destroy their interpreters. A worker stuck in code that
    cannot be interrupted keeps the process alive until that code returns; it is
    reported instead of hanging silently.
    """
    with _live_lock:
        workers = list(_live)
    for worker in workers:
        worker.stop_at_exit()
    deadline = time.monotonic() + _EXIT_DEADLINE
    for worker in workers:
        worker._thread.join(max(0.0, deadline - time.monotonic()))
        if worker._thread.is_alive():
            logger.warning(
                "process exit is waiting for %r, still running %s: code that cannot be "
                "interrupted (a C call, time.sleep, blocking I/O) must return first",
                worker,
                worker.job_label or "its initializer",
            )


_register_atexit: Any = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(_at_exit)
else:  # pragma: no cover
    import atexit

    atexit.register(_at_exit)
