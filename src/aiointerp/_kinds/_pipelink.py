"""The host end of a process worker's channels: four pipes and a socket.

Messages are the frames of :mod:`aiointerp._wire._frames`. On the host, the event loop
never waits for a big write: a big segment is written by a writer thread
(``os.pwrite`` copies without the GIL), the messages sent after it follow it, and a
job cancelled meanwhile is not written on.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from .._wire import _frames, _protocol

if TYPE_CHECKING:
    from ._backends import FrameReader, SignalReader

__all__ = ["PipeLink"]

#: most bytes of a segment that :meth:`PipeLink.send` writes itself (a fraction of
#: a millisecond); a writer thread writes a bigger one
WRITE_ON_LOOP_MAX = 1 << 19


class _ReceivedFile(int):
    """The descriptor of a result file that a worker process sent: closed when dropped.

    The outcome that carries it owns it: it is closed once that outcome is gone,
    whether the host read the file (:func:`aiointerp._host._bigvalues.decode_result`
    duplicates the descriptor first) or not (a stale outcome, a caller gone). A
    result that keeps the file's buffers mapped keeps its pages, not the descriptor.
    """

    __slots__ = ()

    def __del__(self) -> None:
        try:
            os.close(self)
        except Exception:  # pragma: no cover - closed meanwhile, or at exit
            pass


class PipeLink:
    """The host end of a process worker's channels: four pipes and a socket.

    Every message, both ways, is a frame (:func:`_frames.frame`), or a segment named by
    a frame; the host reads the done pipe, non-blocking, with a
    :class:`aiointerp._kinds._backends.FrameReader`. The cancel pipe carries job ids, as for
    interpreters. The *alive* pipe carries nothing: only this process holds its
    write end, so the child sees its end of file when the host dies, however it
    dies. The socket (Unix, datagrams) carries descriptors: of segments, and of
    result files.

    :meth:`send` never blocks on a big message: a segment of more than
    :data:`WRITE_ON_LOOP_MAX` bytes is written by a thread of its own (the
    ``aiointerp-segment-writer``), and the messages sent meanwhile follow it, in
    order. A job cancelled (:meth:`cancel`) while its segment is written is written
    no further: an ``ABANDONED`` job takes its place. Once the link is closed, the
    thread stops, and closes the link's descriptors itself.
    """

    def __init__(self) -> None:
        import socket

        fds: list[int] = []
        try:
            for _ in range(4):
                fds.extend(os.pipe())
            self._sock, child_sock = socket.socketpair(
                socket.AF_UNIX, socket.SOCK_DGRAM
            )
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        sock_r = child_sock.detach()
        job_r, self._job_w, self.done_fd, done_w = fds[:4]
        cancel_r, self._cancel_w, alive_r, self._alive_w = fds[4:]
        os.set_blocking(self.done_fd, False)
        #: the fds the child inherits: job_r, done_w, cancel_r, cancel_w, alive_r,
        #: and its end of the socket
        self.child_fds = (job_r, done_w, cancel_r, self._cancel_w, alive_r, sock_r)
        self._own = [self._job_w, self.done_fd, self._cancel_w, self._alive_w]
        self._child_ends = [job_r, done_w, cancel_r, alive_r, sock_r]
        self._reader: FrameReader | None = None
        self._open = True
        self._lock = threading.Lock()
        #: messages for the writer thread, in order; None: no writer thread runs
        self._queue: deque[bytes | _frames.Segment] | None = None
        #: the id of the last job cancelled: its segment is written no further
        self._abandoned = 0
        #: the tag of the last descriptor sent
        self._tag = 0
        #: a write to the job pipe failed: the child had closed its end (it died)
        self._refused = False

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
        """Send a job-channel message; it never waits for a big one to be written.

        :raises TypeError: the payload cannot be pickled (nothing was sent)
        :raises ValueError: it holds a released memoryview (nothing was sent)
        """
        job = None
        if signal == _protocol.JOB and payload is not None:
            job = payload
            if payload[3] == _protocol.BUFFERS:  # they reach the worker's own memory
                payload = (*payload[:3], _protocol.MAPPED, payload[4])
        message = _frames.frame(signal, payload, job)
        with self._lock:
            if not self._open:  # released: the worker is gone
                return
            if self._queue is not None:  # after what the writer thread has to write
                self._queue.append(message)
                return
            if isinstance(message, bytes) or message.size <= WRITE_ON_LOOP_MAX:
                self._send_now(message)
                return
            self._queue = deque([message])
        try:
            threading.Thread(
                target=self._drain, name="aiointerp-segment-writer", daemon=True
            ).start()
        except RuntimeError:  # pragma: no cover - no thread can start: here, then
            self._drain()

    def _send_now(self, message: bytes | _frames.Segment) -> None:
        """Write *message* (the lock held, or in the writer thread)."""
        try:
            if isinstance(message, bytes):
                _frames.write_all(self._job_w, message)
                return
            job = message.job

            def check() -> None:
                if not self._open or (job is not None and self._abandoned == job[0]):
                    raise _frames.Abandoned

            self._tag += 1
            try:
                check()  # abandoned while it waited in the queue: not even begun
                _frames.send_segment(message, self._sock, self._tag, self._job_w, check)
            except _frames.Abandoned:
                if job is not None and self._open:
                    self._send_now(_frames.frame(_protocol.JOB, self._stub(job, None)))
            except ConnectionError:
                raise
            except Exception as error:
                if job is None:
                    raise
                # it could not be written (no memory...): the call fails, saying why
                why = f"{type(error).__name__}: {error}"
                self._send_now(_frames.frame(_protocol.JOB, self._stub(job, why)))
        except ConnectionError:  # BrokenPipeError, ConnectionRefusedError...
            self._refused = True  # the child died: its done pipe says so, with why

    @staticmethod
    def _stub(job: tuple[Any, ...], why: str | None) -> tuple[Any, ...]:
        """The job sent in place of *job*: it runs nothing, and says why."""
        return (*job[:3], _protocol.ABANDONED, why)

    def _drain(self) -> None:
        """The writer thread: write the queued messages, in order, until none is left."""
        while True:
            with self._lock:
                queue = self._queue
                assert queue is not None
                if not queue:
                    self._queue = None
                    closed = not self._open
                    break
                message = queue.popleft()
            if self._open:
                try:
                    self._send_now(message)
                except Exception:  # pragma: no cover - what _send_now could not say
                    pass
            del message
        if closed:  # close() left them to this thread
            self._close_fds()

    def take(self) -> Any:
        """The payload of the done-channel frame just read."""
        assert self._reader is not None
        payload, self._reader.payload = self._reader.payload, None
        if payload is None:
            return None
        kind = payload[:1]
        if kind == _frames.IN_SEGMENT:
            tag, size, table = pickle.loads(payload[1:])
            fd = _frames.receive_fd(self._sock, tag)
            if fd < 0:  # pragma: no cover - a bug of ours
                raise RuntimeError("aiointerp: a segment's descriptor was lost")
            return _frames.load_segment(fd, size, table)
        if kind == _frames.WITH_FILE:
            outcome = pickle.loads(payload[1:])
            fd = _frames.receive_fd(self._sock, outcome[2])
            # -1: lost; decode_result says so
            value = _ReceivedFile(fd) if fd >= 0 else -1
            return (*outcome[:2], value, *outcome[3:])
        return pickle.loads(payload)

    def logs_queued(self) -> int:
        """Log items wait in frames of their own, which :meth:`take_logs` takes."""
        return 0

    def take_logs(self, limit: int) -> list[Any]:
        """The log item of the LOG frame just read (one per frame)."""
        reader = self._reader
        if reader is None or reader.last != _protocol.LOG or reader.payload is None:
            return []
        return [self.take()]

    def unread(self) -> bool:
        """Does the job pipe hold what the worker never read (the child died)?

        The job in flight is the last message sent: if any byte is left in the pipe
        (or in the writer thread's queue), or the pipe refused it, the child never
        took the job, and none of its code ran.
        """
        import fcntl
        import termios

        with self._lock:
            if self._queue or self._refused:
                return True
            if not self._open:
                return False
            count = bytearray(4)
            try:
                fcntl.ioctl(self._job_w, termios.FIONREAD, count)
            except OSError:  # pragma: no cover - FIONREAD on a pipe is Linux's
                return False
            return int.from_bytes(count, sys.byteorder) > 0

    def cancel(self, job_id: int) -> None:
        """Interrupt *job_id*; if its segment is still being written, abandon it."""
        try:
            # first: the watchdog then knows it before the ABANDONED job arrives
            os.write(self._cancel_w, job_id.to_bytes(_protocol.JOB_ID_SIZE, "little"))
        finally:
            self._abandoned = job_id

    def close(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
            if self._queue is not None:  # the writer thread closes them as it ends
                return
        self._close_fds()

    def _close_fds(self) -> None:
        self.close_child_ends()
        for fd in self._own:
            os.close(fd)
        self._sock.close()
