"""The process kind: a child Python process running the worker loop.

A :class:`ProcessWorker` starts a fresh interpreter (``sys.executable``, never a
``fork`` of the host), off the event loop; its channels are a
:class:`~aiointerp._kinds._pipelink.PipeLink`. The child
(:mod:`aiointerp._inside._child`) ignores SIGINT and exits when the host dies. A
process can be killed: code that does not stop within ``cancel_grace`` after it was
interrupted is killed with SIGKILL, and its slot freed at once
(:meth:`ProcessWorker.kill`). Its end is its reap (:meth:`ProcessWorker._reaped`);
on Linux a pidfd lets the pool see a child that dies while idle.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio

from .._wire._protocol import CONFIG, EXITED, WorkerConfig
from . import _exit
from ._pipelink import PipeLink
from ._worker import Worker

__all__ = ["ProcessWorker", "WorkerExited", "describe_status"]

logger = logging.getLogger("aiointerp")

#: the directory holding the aiointerp package, first on the child's sys.path
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from aiointerp._inside._child import main; main(sys.argv[1:])"
)
#: seconds to wait for a child whose done pipe reached its end to be reaped
_REAP_WAIT = 5.0


class WorkerExited(Exception):
    """Why a worker process ended (the ``__cause__`` of a BrokenWorkerError)."""


def describe_status(returncode: int | None) -> str:
    """``exited with status 3``, ``was killed by signal 9 (SIGKILL)``..."""
    if returncode is None:
        return "closed its pipes but did not exit"
    if returncode >= 0:
        return f"exited with status {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"was killed by signal {number}"
    return f"was killed by signal {number} ({name})"


class ProcessWorker(Worker):
    """One child process serving calls."""

    kind = "process"
    ident_name = "pid"
    killable = True
    _link: PipeLink

    def __init__(self, config: WorkerConfig) -> None:
        super().__init__(config)
        self._config = tuple(config)
        self._link = PipeLink()
        self._process: subprocess.Popen[bytes] | None = None
        self._released = False
        self._release_lock = threading.Lock()
        #: a pidfd of the child: readable once it has ended (-1: none)
        self._pidfd = -1

    # -- what a kind provides

    async def _launch(self) -> None:
        _exit.register(self)
        try:
            await anyio.to_thread.run_sync(self._spawn)
        except BaseException as exc:
            if self._process is None:  # nothing will reap it
                _exit.unregister(self)
                self._failure = exc
            raise

    def _spawn(self) -> None:
        """Start the child and send it its config (on a worker thread)."""
        # Popen of `sys.executable -c` (a two-line bootstrap that imports
        # aiointerp._inside._child), close_fds=True and the six fds of the channels
        # in pass_fds, on one of anyio's worker threads so that the event loop never
        # waits for it. Never fork: the host runs threads (the event loop's,
        # anyio's, other workers'), and a forked child of a threaded process may
        # deadlock on a lock another thread held. Popen uses posix_spawn or
        # vfork+exec where it can, so the child runs nothing of the parent before
        # exec (multiprocessing's spawn does the same with more machinery). The
        # cost is a fresh interpreter's start, paid once per worker, usually in the
        # background (min_idle).
        link = self._link
        try:
            self._process = subprocess.Popen(
                # -X dev, -O, -W...: the host's options, as multiprocessing passes
                [sys.executable, *subprocess._args_from_interpreter_flags()]  # type: ignore[attr-defined]
                + ["-c", _BOOTSTRAP, _PACKAGE_ROOT]
                + [str(fd) for fd in link.child_fds],
                stdin=subprocess.DEVNULL,
                pass_fds=link.child_fds,
                close_fds=True,
            )
        finally:
            link.close_child_ends()
        self._began()
        self.ident = self._process.pid
        pidfd_open = getattr(os, "pidfd_open", None)  # Linux only
        try:  # before anything could reap the child: the pid is still its own
            if pidfd_open is not None:
                self._pidfd = pidfd_open(self.ident)
        except OSError:  # out of fds...: its death while idle goes unwatched
            pass
        link.send(CONFIG, self._config)

    async def _signal(self) -> bytes:
        signal_ = await super()._signal()
        if signal_ == b"" and self._failure is None:
            # the done pipe ended without EXITED: the process died; say how
            self._failure = WorkerExited(
                f"the process {describe_status(await self._reap())}"
            )
        elif signal_ == EXITED and self._failure is None:
            why = self._link.take()  # what its loop raised, if it did
            if why:
                self._failure = WorkerExited(f"its worker loop raised {why[0]}")
        return signal_

    def _why_ended(self) -> str:
        if isinstance(self._failure, WorkerExited):
            return str(self._failure)
        return super()._why_ended()

    def _reaped(self, timeout: float | None) -> int | None:
        """Reap the child, waiting up to *timeout* seconds (``None``: no limit).

        Its exit status, or ``None`` if it still runs (or never ran). Every reap of
        the child is here: the one place its end is reported (:meth:`_ended`).
        """
        process = self._process
        if process is None:
            return None
        try:
            returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:  # a stuck exit
            return None
        self._ended()
        return returncode

    async def _reap(self) -> int | None:
        """Reap the child off the event loop (:data:`_REAP_WAIT` seconds at most)."""
        with anyio.CancelScope(shield=True):
            returncode = await anyio.to_thread.run_sync(self._reaped, _REAP_WAIT)
        return returncode

    async def wait_exited(self) -> str:
        """Wait until the child has ended (its pidfd is readable); say how
        (``was killed by signal 9 (SIGKILL)``).

        Returns ``""`` at once when its end cannot be watched (no pidfd: not
        Linux, or no fd was left for it); else the child is reaped (:attr:`alive`
        is false). Call it once: it takes the pidfd over.
        """
        with self._release_lock:
            fd, self._pidfd = self._pidfd, -1  # ours to close now, not _release's
        if fd < 0:
            return ""
        try:
            await anyio.wait_readable(fd)
        finally:
            os.close(fd)
        # readable: the child has ended, its reap does not wait
        return describe_status(self._reaped(0))

    async def _finish(self) -> None:
        if await self._reap() is None:  # its exit is stuck: a thread waits for it
            self._abandon()
            return
        self._release()

    def _abandon(self) -> None:
        """The child does not end now (stuck code, or threads its calls started).

        Unlike an interpreter, a process can be killed: it is, and a thread reaps it.
        """
        process = self._process
        if process is None:
            self._release()
            return
        self.kill()

        def reap() -> None:
            self._reaped(None)
            self._release()

        threading.Thread(target=reap, name="aiointerp-reaper", daemon=True).start()

    def kill(self) -> bool:
        """Kill the child with SIGKILL; a thread reaps it and releases the link."""
        process = self._process
        if process is not None:
            # nothing for a child reaped meanwhile (Popen polls first, and ignores
            # ProcessLookupError); a reap by that poll is noted by the _reaped()
            # that follows every kill (_abandon's reaper, the exit hook's join)
            process.kill()
        self._spent = True
        return True

    def _release(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
            if self._pidfd >= 0:
                os.close(self._pidfd)
        _exit.unregister(self)  # first: the exit hook must not write to closed fds
        self._link.close()

    # -- for the process-exit hook (aiointerp._kinds._exit)

    def join(self, timeout: float | None) -> None:
        self._reaped(timeout)
