"""How the channels of :mod:`aiointerp._protocol` are carried, per kind of worker.

Stdlib only: the worker's end runs inside the worker. Each kind has two classes, its
*host end* (used by the worker's host-side object on the event loop, never blocking)
and its *worker end* (used by :func:`aiointerp._inside.serve`, which knows nothing
else of the kind). The worker end offers:

* ``receive() -> (signal, payload)``: the next job-channel message (blocking);
* ``send(signal, payload=None)``: a done-channel message;
* ``cancel_fd``: the fd the watchdog reads job ids from; ``stop_watchdog()``;
* ``forward_logs(levels, output)``: route this worker's log records (and, with
  *output*, its ``sys.stdout``/``sys.stderr``) to the host.

**Interpreters.** Wake-ups travel as one byte on a pipe per direction; payloads on a
cross-interpreter queue per direction, put *before* the byte that announces them, so
a reader that sees the byte always finds the payload. Payloads are plain tuples of
shareable values (the named tuples of :mod:`aiointerp._protocol` travel as tuples).
"""

from __future__ import annotations

import os
import threading

from . import _interp, _logs, _protocol

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable
    from typing import Any

    from ._backends import FrameReader, SignalReader

    type InterpreterEnds = tuple[int, int, int, int, int, int, int | None]
    """job_r, done_w, cancel_r, cancel_w, job queue, result queue, log queue"""

__all__ = ["InterpreterChannel", "InterpreterLink", "PipeChannel", "PipeLink"]


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

    def take_logs(self) -> list[Any]:
        """The log items queued so far (none once the interpreter is gone)."""
        items: list[Any] = []
        get = self._get_log
        if get is None or not self._open or not self._logs_queued():
            return items
        while True:
            try:
                items.append(get())
            except Exception:  # empty (or its interpreter is gone)
                return items

    def drain(self) -> None:
        """Keep the queued payloads: the interpreter that put them is going away.

        Called by the worker's thread, after the loop ended and before it destroys
        the interpreter.
        """
        from collections import deque

        with self.lock:
            if self.leftovers is None:
                self.leftovers = deque()
            while True:
                try:
                    self.leftovers.append(self._get())
                except Exception:  # empty
                    return

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


class InterpreterChannel:
    """The worker end of an interpreter worker's channels (inside the interpreter)."""

    shares_fds = True  # one process: the host reads big results from our files

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
        self, levels: _logs.Levels | None, output: bool
    ) -> _logs._Forwarding:
        assert self._log_qid is not None
        put_log, _ = _interp.open_queue(self._log_qid)
        size = _interp.queue_size(self._log_qid)
        return _logs.install(put_log, size, self._done_w, levels, output)


# -- processes ---------------------------------------------------------------------

#: a frame: signal byte, payload length (4 bytes, little-endian), pickled payload
_HEADER = 5
_PICKLE_PROTOCOL = 5


def _frame(signal: bytes, payload: Any) -> bytes:
    if payload is None:
        return signal + b"\0\0\0\0"
    import pickle

    try:
        blob = pickle.dumps(payload, _PICKLE_PROTOCOL)
    except TypeError:  # a memoryview among shareable arguments: it goes as a copy
        blob = _dumps_views(payload)
    return signal + len(blob).to_bytes(4, "little") + blob


def _dumps_views(payload: Any) -> bytes:
    import io
    import pickle

    class _Pickler(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is memoryview:
                return memoryview, (obj.tobytes(),)
            return NotImplemented

    out = io.BytesIO()
    _Pickler(out, _PICKLE_PROTOCOL).dump(payload)
    return out.getvalue()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes | None:
    """*size* bytes from the blocking *fd*, or None at end of file."""
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class PipeLink:
    """The host end of a process worker's channels: four pipes.

    Every message, both ways, is a frame (:func:`_frame`); the host reads the done
    pipe, non-blocking, with a :class:`aiointerp._backends.FrameReader`. The cancel
    pipe carries job ids, as for interpreters. The *alive* pipe carries nothing:
    only this process holds its write end, so the child sees its end of file when
    the host dies, however it dies.
    """

    def __init__(self) -> None:
        fds: list[int] = []
        try:
            for _ in range(4):
                fds.extend(os.pipe())
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        job_r, self._job_w, self.done_fd, done_w = fds[:4]
        cancel_r, self._cancel_w, alive_r, self._alive_w = fds[4:]
        os.set_blocking(self.done_fd, False)
        #: the fds the child inherits: job_r, done_w, cancel_r, cancel_w, alive_r
        self.child_fds = (job_r, done_w, cancel_r, self._cancel_w, alive_r)
        self._own = [self._job_w, self.done_fd, self._cancel_w, self._alive_w]
        self._child_ends = [job_r, done_w, cancel_r, alive_r]
        self._reader: FrameReader | None = None
        self._open = True

    def close_child_ends(self) -> None:
        """The child started (or could not): this process needs its ends no more.

        The done pipe then reaches end of file when the child dies.
        """
        ends, self._child_ends = self._child_ends, []
        for fd in ends:
            os.close(fd)

    def reader(self) -> SignalReader:
        from ._backends import frame_reader

        self._reader = frame_reader(self.done_fd)
        return self._reader

    def send(self, signal: bytes, payload: tuple[Any, ...] | None = None) -> None:
        """Send a job-channel message (blocking until the pipe took it all).

        :raises TypeError: the payload cannot be pickled (nothing was sent)
        """
        frame = _frame(signal, payload)
        try:
            _write_all(self._job_w, frame)
        except BrokenPipeError:  # the child died: its done pipe says so, with why
            pass

    def take(self) -> Any:
        """The payload of the done-channel frame just read."""
        import pickle

        assert self._reader is not None
        payload, self._reader.payload = self._reader.payload, None
        return None if payload is None else pickle.loads(payload)

    def take_logs(self) -> list[Any]:
        """The log item of the LOG frame just read (one per frame)."""
        reader = self._reader
        if reader is None or reader.last != _protocol.LOG or reader.payload is None:
            return []
        return [self.take()]

    def cancel(self, job_id: int) -> None:
        os.write(self._cancel_w, job_id.to_bytes(_protocol.JOB_ID_SIZE, "little"))

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        self.close_child_ends()
        for fd in self._own:
            os.close(fd)


class PipeChannel:
    """The worker end of a process worker's channels (in the child).

    Frames sent from several threads (log records of user threads, outcomes of the
    loop) never interleave: each is written whole under a lock.
    """

    shares_fds = False  # another process: big results travel in the frames

    def __init__(self, job_r: int, done_w: int, cancel_r: int, cancel_w: int) -> None:
        self._job_r = job_r
        self._done_w = done_w
        self.cancel_fd = cancel_r
        self._cancel_w = cancel_w
        self._lock = threading.Lock()

    def receive(self) -> tuple[bytes, Any]:
        header = _read_exactly(self._job_r, _HEADER)
        if header is None:
            return b"", None  # the host is gone
        size = int.from_bytes(header[1:], "little")
        if not size:
            return header[:1], None
        blob = _read_exactly(self._job_r, size)
        if blob is None:
            return b"", None
        import pickle

        return header[:1], pickle.loads(blob)

    def send(self, signal: bytes, payload: tuple[Any, ...] | None = None) -> None:
        frame = _frame(signal, None if payload is None else tuple(payload))
        with self._lock:
            _write_all(self._done_w, frame)

    def stop_watchdog(self) -> None:
        stop = _protocol.STOP_WATCHDOG.to_bytes(_protocol.JOB_ID_SIZE, "little")
        os.write(self._cancel_w, stop)

    def cancel(self, job_id: int) -> None:
        """Interrupt *job_id* from inside the child (the host is gone)."""
        os.write(self._cancel_w, job_id.to_bytes(_protocol.JOB_ID_SIZE, "little"))

    def forward_logs(
        self, levels: _logs.Levels | None, output: bool
    ) -> _logs._Forwarding:
        def put(item: Any) -> None:
            self.send(_protocol.LOG, item)

        # every record is a frame of its own: no queue to count, no wake-up byte
        return _logs.install(put, lambda: 0, -1, levels, output)
