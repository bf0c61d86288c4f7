"""The worker ends of each kind's channels, used by the worker loop inside the worker.

Each offers what :func:`aiointerp._inside._loop.serve` needs, and nothing of the kind:

* ``receive() -> (signal, payload)``: the next job-channel message (blocking);
* ``send(signal, payload=None)``: a done-channel message;
* ``cancel_fd``: the fd the watchdog reads job ids from; ``stop_watchdog()``;
* ``forward_logs(levels, output)``: route this worker's log records (and, with
  *output*, its ``sys.stdout``/``sys.stderr``) to the host.

The host ends are the links of :mod:`aiointerp._kinds._interpreter` and
:mod:`aiointerp._kinds._pipelink`.
"""

from __future__ import annotations

import os
import threading

from .._wire import _big, _frames, _interp, _logitems, _pipes, _protocol
from . import _logs

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Any

    type InterpreterEnds = tuple[int, int, int, int, int, int, int | None]
    """job_r, done_w, cancel_r, cancel_w, job queue, result queue, log queue"""

__all__ = ["InterpreterChannel", "PipeChannel"]


class InterpreterChannel:
    """The worker end of an interpreter worker's channels (inside the interpreter)."""

    #: the worker kind, in messages
    kind = "interpreter"
    shares_fds = True  # one process: the host reads big results from our files
    #: an isolated subinterpreter: extension modules may refuse to load here
    isolated = True

    def __init__(self, ends: InterpreterEnds) -> None:
        job_r, done_w, cancel_r, cancel_w, job_qid, result_qid, log_qid = ends
        self._job_r = job_r
        self._done_w = done_w
        self.cancel_fd = cancel_r
        self._cancel_w = cancel_w
        _, self._get = _interp.open_queue(job_qid)
        self._put, _ = _interp.open_queue(result_qid)
        self._log_qid = log_qid

    def receive(self) -> tuple[bytes, Any]:
        signal = os.read(self._job_r, 1)
        if signal in (_protocol.JOB, _protocol.LEVELS):
            return signal, self._get()
        return signal, None

    def send(self, signal: bytes, payload: tuple[Any, ...] | None = None) -> None:
        if payload is not None:
            self._put(tuple(payload))  # a named tuple is not shareable as is
        os.write(self._done_w, signal)

    def stop_watchdog(self) -> None:
        stop = _protocol.STOP_WATCHDOG.to_bytes(_protocol.JOB_ID_SIZE, "little")
        os.write(self._cancel_w, stop)

    def forward_logs(
        self, levels: _logitems.Levels | None, output: bool
    ) -> _logs.Forwarding:
        assert self._log_qid is not None
        put_log, _ = _interp.open_queue(self._log_qid)
        size = _interp.queue_size(self._log_qid)
        # the queue is host memory that nobody reads between calls: bounded then
        return _logs.install(
            put_log, size, self._done_w, levels, output, _logitems.IDLE_BUDGET
        )


class PipeChannel:
    """The worker end of a process worker's channels (in the child).

    Messages sent from several threads (log records of user threads, outcomes of
    the loop) never interleave: each is written whole under a lock.
    """

    #: the worker kind, in messages
    kind = "process"
    #: the host reads this worker's result files: their descriptors cross the socket
    #: with the outcomes (ours is closed once they did: :func:`_big.sent`)
    shares_fds = True
    #: a process's main interpreter: every extension module loads
    isolated = False

    def __init__(
        self, job_r: int, done_w: int, cancel_r: int, cancel_w: int, sock_fd: int
    ) -> None:
        self._job_r = job_r
        self._done_w = done_w
        self.cancel_fd = cancel_r
        self._cancel_w = cancel_w
        self._sock_fd = sock_fd
        self._sock: Any = None  # made at first use: the socket module costs 1 ms
        self._tag = 0
        self._lock = threading.Lock()

    def _socket(self) -> Any:
        if self._sock is None:
            import socket

            self._sock = socket.socket(fileno=self._sock_fd)
        return self._sock

    def receive(self) -> tuple[bytes, Any]:
        data = _pipes.read_exactly(self._job_r, _frames.HEADER)
        if data is None:
            return b"", None  # the host is gone
        signal, size = _frames.header(data)
        if not size:
            return signal, None
        blob = _pipes.read_exactly(self._job_r, size)
        if blob is None:
            return b"", None
        marker, payload = _frames.decode(blob)
        if marker == _frames.IN_SEGMENT:
            tag, size, table = payload
            fd = _pipes.receive_fd(self._socket(), tag)
            if fd < 0:  # the host died between the descriptor and the frame
                return b"", None
            return signal, _pipes.load_segment(fd, size, table)
        return signal, payload

    def send(self, signal: bytes, payload: tuple[Any, ...] | None = None) -> None:
        if payload is not None:
            payload = tuple(payload)  # a named tuple pickles by reference
        in_file = (
            payload is not None and signal == _protocol.DONE and _big.in_file(payload)
        )
        # pickled before the lock is taken: a finalizer that runs meanwhile may log
        # or print, which sends through here again (the lock is not reentrant)
        message = None if in_file else _frames.frame(signal, payload)
        with self._lock:
            try:
                if message is None:
                    assert payload is not None
                    self._send_file(signal, payload)
                    return
                if isinstance(message, bytes):
                    _pipes.write_all(self._done_w, message)
                    return
                # only this process waits for its segments: written at once
                self._tag += 1
                _pipes.send_segment(message, self._socket(), self._tag, self._done_w)
            except ConnectionError as error:  # the host is gone
                raise BrokenPipeError(str(error)) from error

    def _send_file(self, signal: bytes, outcome: tuple[Any, ...]) -> None:
        """An outcome whose result is in a file: its descriptor first, then the frame."""
        fd = outcome[2]
        self._tag += 1
        _pipes.send_fd(self._socket(), fd, self._tag)
        _big.sent(fd)
        _pipes.write_all(self._done_w, _frames.file_frame(signal, outcome, self._tag))

    def stop_watchdog(self) -> None:
        stop = _protocol.STOP_WATCHDOG.to_bytes(_protocol.JOB_ID_SIZE, "little")
        os.write(self._cancel_w, stop)

    def cancel(self, job_id: int) -> None:
        """Interrupt *job_id* from inside the child (the host is gone)."""
        os.write(self._cancel_w, job_id.to_bytes(_protocol.JOB_ID_SIZE, "little"))

    def forward_logs(
        self, levels: _logitems.Levels | None, output: bool
    ) -> _logs.Forwarding:
        def put(item: Any) -> None:
            self.send(_protocol.LOG, item)

        # every record is a frame of its own: no queue to count, no wake-up byte;
        # and no budget: between calls the pipe fills, then the writer waits
        return _logs.install(put, lambda: 0, -1, levels, output)
