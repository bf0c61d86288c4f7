"""The host end of a process worker's channels (:class:`PipeLink`).

Its messages are the frames of :mod:`aiointerp._wire._frames`, moved by
:mod:`aiointerp._wire._pipes`; the state its senders share with its segment writer
thread is one :class:`_Outbox`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from .._wire import _frames, _pipes, _protocol

if TYPE_CHECKING:
    from ._backends import FrameReader, SignalReader

__all__ = ["PipeLink"]

#: most bytes of a segment that :meth:`PipeLink.send` writes itself (a fraction of
#: a millisecond); a writer thread writes a bigger one
WRITE_ON_LOOP_MAX = 1 << 19

type _Message = bytes | _frames.Segment

# the states of an _Outbox
IDLE: Final = "idle"
WRITING: Final = "writing"
CLOSING: Final = "closing"
CLOSED: Final = "closed"


class _Outbox:
    """What the senders of a link and its writer thread share: one lock, one state.

    The job pipe has one writer at a time, and :attr:`state` says which:

    ``IDLE``
        No writer thread runs. A sender writes its message itself, holding
        :attr:`lock` for the whole write (a sender is the event loop, or a thread
        that stops the worker: the reaper, the exit hook).
    ``WRITING``
        The writer thread runs, and it alone writes, without the lock (a big
        segment takes long); senders append to :attr:`queue`, under the lock.
    ``CLOSING``
        The link was closed while the writer thread ran: the thread writes nothing
        more, and closes the link's descriptors as it ends.
    ``CLOSED``
        Nothing is written any more, and the descriptors are closed (or being
        closed, by whoever closed the link or by the writer thread).

    Transitions, each made under :attr:`lock`: ``IDLE -> WRITING`` when a sender
    hands a big segment to a new writer thread (:meth:`hand_over`); ``WRITING ->
    IDLE`` and ``CLOSING -> CLOSED`` when the writer thread finds the queue empty
    and ends (:meth:`next`); ``WRITING -> CLOSING`` and ``IDLE -> CLOSED`` at
    :meth:`close`. The lock is reentrant: a sender that holds it while it writes a
    segment checks, between its chunks, whether the job is still wanted.
    """

    __slots__ = ("abandoned", "lock", "queue", "refused", "state", "tag")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.state: str = IDLE
        #: messages for the writer thread, in order (empty unless ``WRITING``)
        self.queue: deque[_Message] = deque()
        #: the id of the last job cancelled: its segment is written no further
        self.abandoned = 0
        #: the tag of the last descriptor sent
        self.tag = 0
        #: a write to the job pipe failed: the child had closed its end (it died)
        self.refused = False

    def hand_over(self, message: _Message) -> None:
        """``IDLE -> WRITING``: *message* is the writer thread's (the lock held)."""
        assert self.state == IDLE
        self.queue.append(message)
        self.state = WRITING

    def next(self) -> tuple[_Message | None, bool]:
        """The writer thread's next message; ``(None, closed)`` when it must end."""
        with self.lock:
            if self.queue:
                return self.queue.popleft(), False
            closed = self.state == CLOSING
            self.state = CLOSED if closed else IDLE
            return None, closed

    def close(self) -> bool:
        """Nothing more is written: does the caller close the descriptors?"""
        with self.lock:
            if self.state == WRITING:  # the writer thread closes them as it ends
                self.state = CLOSING
                return False
            if self.state != IDLE:
                return False
            self.state = CLOSED
            return True

    def next_tag(self) -> int:
        """The tag of the next descriptor sent (by the job pipe's writer)."""
        with self.lock:
            self.tag += 1
            return self.tag

    def abandon(self, job_id: int) -> None:
        with self.lock:
            self.abandoned = job_id

    def check(self, job: tuple[Any, ...] | None) -> None:
        """Between the chunks of a segment: is it still wanted?

        :raises Abandoned: the link is closed, or *job* was cancelled
        """
        with self.lock:
            if self.state in (CLOSING, CLOSED) or (
                job is not None and self.abandoned == job[0]
            ):
                raise _pipes.Abandoned

    def writable(self) -> bool:
        """May the job pipe's writer write (the link is not closed)?"""
        with self.lock:
            return self.state in (IDLE, WRITING)

    def refuse(self) -> None:
        with self.lock:
            self.refused = True


class _ReceivedFile(int):
    """The descriptor of a result file that a worker process sent: closed when dropped.

    The outcome that carries it owns it: it is closed once that outcome is gone,
    whether the host read the file or not (a stale outcome, a caller gone). A
    result that keeps the file's buffers mapped keeps its pages, not the descriptor.
    """

    __slots__ = ()

    def __del__(self) -> None:
        try:
            os.close(self)
        except Exception:  # closed meanwhile; or at exit, with os half torn down
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
        #: the job pipe's writing state, shared with the writer thread
        self._outbox = _Outbox()

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
        outbox = self._outbox
        with outbox.lock:
            if outbox.state == IDLE:
                if isinstance(message, bytes) or message.size <= WRITE_ON_LOOP_MAX:
                    self._write(message)  # the lock held: this thread is the writer
                    return
                outbox.hand_over(message)
            elif outbox.state == WRITING:  # after what the writer thread has to write
                outbox.queue.append(message)
                return
            else:  # closed: the worker is gone
                return
        try:
            threading.Thread(
                target=self._drain, name="aiointerp-segment-writer", daemon=True
            ).start()
        except RuntimeError:  # no thread can start (at exit...): here, then
            self._drain()

    def _write(self, message: _Message) -> None:
        """Write *message*: only the job pipe's writer calls it (see :class:`_Outbox`).

        A segment that cannot be written (cancelled, no memory...) is replaced by an
        ``ABANDONED`` job: its caller learns why, and the worker serves on.
        """
        outbox = self._outbox
        try:
            if isinstance(message, bytes):
                _pipes.write_all(self._job_w, message)
                return
            job = message.job

            def check() -> None:
                outbox.check(job)

            tag = outbox.next_tag()
            try:
                check()  # abandoned while it waited in the queue: not even begun
                _pipes.send_segment(message, self._sock, tag, self._job_w, check)
            except _pipes.Abandoned:
                if job is not None and outbox.writable():
                    self._write(_frames.frame(_protocol.JOB, self._stub(job, None)))
            except ConnectionError:
                raise
            except Exception as error:
                if job is None:
                    raise
                # it could not be written (no memory...): the call fails, saying why
                why = f"{type(error).__name__}: {error}"
                self._write(_frames.frame(_protocol.JOB, self._stub(job, why)))
        except ConnectionError:  # BrokenPipeError, ConnectionRefusedError...
            outbox.refuse()  # the child died: its done pipe says so, with why

    @staticmethod
    def _stub(job: tuple[Any, ...], why: str | None) -> tuple[Any, ...]:
        """The job sent in place of *job*: it runs nothing, and says why."""
        return (*job[:3], _protocol.ABANDONED, why)

    def _drain(self) -> None:
        """The writer thread: write the queued messages, in order, until none is left."""
        outbox = self._outbox
        while True:
            message, closed = outbox.next()
            if message is None:
                break
            if outbox.writable():
                try:
                    self._write(message)
                except Exception:  # a message of no job (nobody waits for it) that
                    pass  # could not be written: dropped, as on a closed link
            del message
        if closed:  # close() left them to this thread
            self._close_fds()

    def take(self) -> Any:
        """The payload of the done-channel frame just read."""
        assert self._reader is not None
        payload, self._reader.payload = self._reader.payload, None
        if payload is None:
            return None
        marker, value = _frames.decode(payload)
        if marker == _frames.IN_SEGMENT:
            tag, size, table = value
            fd = _pipes.receive_fd(self._sock, tag)
            if fd < 0:  # the worker sends the descriptor first: a bug of ours
                raise RuntimeError("aiointerp: a segment's descriptor was lost")
            return _pipes.load_segment(fd, size, table)
        if marker == _frames.WITH_FILE:
            fd = _pipes.receive_fd(self._sock, value[2])
            # -1: lost; decode_result says so
            received = _ReceivedFile(fd) if fd >= 0 else -1
            return (*value[:2], received, *value[3:])
        return value

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

        outbox = self._outbox
        with outbox.lock:
            if outbox.queue or outbox.refused:
                return True
            if outbox.state in (CLOSING, CLOSED):
                return False
            count = bytearray(4)
            try:
                fcntl.ioctl(self._job_w, termios.FIONREAD, count)
            except OSError:  # FIONREAD on a pipe is Linux's: elsewhere, unknown
                return False
            return int.from_bytes(count, sys.byteorder) > 0

    def cancel(self, job_id: int) -> None:
        """Interrupt *job_id*; if its segment is still being written, abandon it."""
        try:
            # first: the watchdog then knows it before the ABANDONED job arrives
            os.write(self._cancel_w, job_id.to_bytes(_protocol.JOB_ID_SIZE, "little"))
        finally:
            self._outbox.abandon(job_id)

    def close(self) -> None:
        """Close the link; while the writer thread runs, it closes the descriptors."""
        if self._outbox.close():
            self._close_fds()

    def _close_fds(self) -> None:
        self.close_child_ends()
        for fd in self._own:
            os.close(fd)
        self._sock.close()
