"""How the channels of :mod:`aiointerp._wire._protocol` are carried, per kind of worker.

Stdlib only: the worker's end runs inside the worker. Each kind has two classes, its
*host end* (used by the worker's host-side object on the event loop, never blocking)
and its *worker end* (used by :func:`aiointerp._inside._loop.serve`, which knows nothing
else of the kind). The worker end offers:

* ``receive() -> (signal, payload)``: the next job-channel message (blocking);
* ``send(signal, payload=None)``: a done-channel message;
* ``cancel_fd``: the fd the watchdog reads job ids from; ``stop_watchdog()``;
* ``forward_logs(levels, output)``: route this worker's log records (and, with
  *output*, its ``sys.stdout``/``sys.stderr``) to the host.

**Interpreters.** Wake-ups travel as one byte on a pipe per direction; payloads on a
cross-interpreter queue per direction, put *before* the byte that announces them, so
a reader that sees the byte always finds the payload. Payloads are plain tuples of
shareable values (the named tuples of :mod:`aiointerp._wire._protocol` travel as tuples).

**Processes.** Every message is a *frame* on a pipe: a signal byte, a 4-byte length,
and the payload pickled (protocol 5). A payload of more than :data:`INLINE_MAX`
bytes, or with big out-of-band buffers (numpy arrays' data, and every
``memoryview``), never goes through a pipe: it is written to a *segment*
(:mod:`aiointerp._wire._segments`: a ``memfd`` holding the pickle's stream and, apart,
its buffers), whose descriptor crosses on a Unix datagram socket (SCM_RIGHTS), and
the frame only names it. The receiver maps the segment: an array comes out over
its pages, without a copy. A big result crosses as for every kind, in a result file
(:mod:`aiointerp._wire._big`), whose descriptor crosses on the socket too. Each
descriptor travels with a tag that its frame repeats, and goes just before that
frame. Nothing has a name: whatever dies, the kernel frees what it held.

On the host, the event loop never waits for a big write: a big segment is written
by a writer thread (``os.pwrite`` copies without the GIL), the messages sent after it
follow it, and a job cancelled meanwhile is not written on (see :class:`PipeLink`).
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from collections import deque

from .._inside import _logs
from .._wire import _big, _interp, _protocol, _segments

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
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
        host last read, bounded (:data:`aiointerp._inside._logs.IDLE_BUDGET`).
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
        self, levels: _logs.Levels | None, output: bool
    ) -> _logs._Forwarding:
        assert self._log_qid is not None
        put_log, _ = _interp.open_queue(self._log_qid)
        size = _interp.queue_size(self._log_qid)
        # the queue is host memory that nobody reads between calls: bounded then
        return _logs.install(
            put_log, size, self._done_w, levels, output, _logs.IDLE_BUDGET
        )


# -- processes ---------------------------------------------------------------------

#: a frame: signal byte, payload length (4 bytes, little-endian), payload
_HEADER = 5
_PICKLE_PROTOCOL = 5
#: most bytes of a payload sent in a frame; a bigger one goes in a segment
INLINE_MAX = 1 << 16
#: most bytes of a segment that :meth:`PipeLink.send` writes itself (a fraction of
#: a millisecond); a writer thread writes a bigger one
WRITE_ON_LOOP_MAX = 1 << 19
#: the first byte of a payload that is not a pickle (a pickle starts with 0x80):
#: the payload is in a segment, whose descriptor came on the socket just before
_IN_SEGMENT = b"S"
#: the payload is an outcome whose value is a result file's descriptor, which came
#: on the socket just before (the value is the descriptor's tag)
_WITH_FILE = b"F"
#: bytes of a descriptor's tag: its datagram's data
_TAG = 8


class _Pickler(pickle.Pickler):
    """Pickles a frame's payload; a ``memoryview`` as a PickleBuffer, out of band if big."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is memoryview:
            if obj.contiguous:  # raises for a released view: nothing is sent
                return memoryview, (pickle.PickleBuffer(obj),)
            return memoryview, (obj.tobytes(),)
        return NotImplemented


class _Segment:
    """A message whose payload is too big for a frame: sent by :func:`_send_segment`."""

    __slots__ = ("buffers", "job", "pieces", "signal", "size")

    def __init__(
        self,
        signal: bytes,
        pieces: list[Any],
        buffers: list[memoryview],
        job: tuple[Any, ...] | None,
    ) -> None:
        self.signal = signal
        self.pieces = pieces
        self.buffers = buffers
        self.size = sum(len(p) for p in pieces) + sum(b.nbytes for b in buffers)
        #: the job it carries, or None: what an abandoned job is replaced with
        self.job = job


def _inline(signal: bytes, blob: bytes) -> bytes:
    return signal + len(blob).to_bytes(4, "little") + blob


class _Encoder(_big.PieceWriter):
    """Pickles payloads into pieces (big buffers by reference) and out-of-band buffers.

    One per thread, reused with its pickler: creating one costs more than a small
    payload's pickle.
    """

    __slots__ = ("busy", "oob", "pickler")

    def __init__(self) -> None:
        super().__init__()
        self.oob = _segments.OutOfBand()
        self.pickler = _Pickler(self, _PICKLE_PROTOCOL, buffer_callback=self.oob)
        self.busy = False

    def encode(self, payload: Any) -> tuple[list[Any], list[memoryview]]:
        self.busy = True
        self.pieces = []
        self.oob.buffers = []
        try:
            self.pickler.dump(payload)
            return self.pieces, self.oob.buffers
        finally:
            self.pickler.clear_memo()
            self.pieces = []
            self.oob.buffers = []
            self.busy = False


_local = threading.local()


def _frame(
    signal: bytes, payload: Any, job: tuple[Any, ...] | None = None
) -> bytes | _Segment:
    """A message: a frame, or a segment if its payload is big.

    :raises TypeError: the payload cannot be pickled
    :raises ValueError: it holds a released memoryview
    """
    if payload is None:
        return signal + b"\0\0\0\0"
    if _small(payload):  # the common case: one pickle, as fast as can be
        try:
            blob = pickle.dumps(payload, _PICKLE_PROTOCOL)
        except TypeError:  # pragma: no cover - _small lets no memoryview through
            pass
        else:
            if len(blob) <= INLINE_MAX:
                return _inline(signal, blob)
    encoder: _Encoder | None = getattr(_local, "encoder", None)
    if encoder is None or encoder.busy:  # busy: a __reduce__ that sends a message
        encoder = _local.encoder = _Encoder()
    pieces, buffers = encoder.encode(payload)
    if buffers or sum(len(piece) for piece in pieces) > INLINE_MAX:
        return _Segment(signal, pieces, buffers, job)
    return _inline(signal, pieces[0] if len(pieces) == 1 else b"".join(pieces))


_SCALARS = frozenset({type(None), bool, int, float})
#: items that :func:`_small` looks at before it gives up
_SMALL_ITEMS = 64


def _small(payload: tuple[Any, ...]) -> bool:
    """Is *payload* a few scalars, strings and bytes, together well under a frame?"""
    budget = INLINE_MAX // 2
    items = _SMALL_ITEMS
    stack = [payload]
    while stack:
        current = stack.pop()
        items -= len(current)
        if items < 0:
            return False
        for item in current:
            kind = type(item)
            if kind in _SCALARS:
                continue
            if kind is str or kind is bytes:
                budget -= len(item)
                if budget < 0:
                    return False
            elif kind is tuple:
                stack.append(item)
            else:  # a memoryview, a list...: the general way
                return False
    return True


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


class _Abandoned(Exception):
    """The segment being written is not needed any more."""


def _no_check() -> None:
    return None


def _send_segment(
    segment: _Segment,
    sock: Any,
    tag: int,
    pipe: int,
    check: Callable[[], None] = _no_check,
) -> None:
    """Write *segment*, send its descriptor with *tag*, then its frame on *pipe*.

    :raises _Abandoned: *check* raised it; nothing was sent
    :raises OSError: the segment could not be made (nothing was sent), or the
        other side is gone
    """
    fd, size, table = _segments.write(segment.pieces, segment.buffers, check)
    try:
        _send_fd(sock, fd, tag)
    finally:
        os.close(fd)  # in flight, the descriptor holds the file
    blob = _IN_SEGMENT + pickle.dumps((tag, size, table), _PICKLE_PROTOCOL)
    _write_all(pipe, _inline(segment.signal, blob))


def _send_fd(sock: Any, fd: int, tag: int) -> None:
    import socket

    socket.send_fds(sock, [tag.to_bytes(_TAG, "little")], [fd])


def _receive_fd(sock: Any, tag: int) -> int:
    """The descriptor sent with *tag*, or -1; older ones that nobody took are closed.

    It was sent before the frame that names it: it is there, never waited for.
    """
    import socket

    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, _TAG, 1, socket.MSG_DONTWAIT)
        except OSError:  # none (the sender died between the two?)
            return -1
        got = int.from_bytes(data, "little")
        if got == tag and fds:
            return fds[0]
        for fd in fds:
            os.close(fd)
        if not data or got > tag:
            return -1


def _load_segment(fd: int, size: int, table: _segments.Table) -> Any:
    """Unpickle the segment *fd* (closed here), its buffers mapped, not copied.

    For a receiver that may hold the GIL as it copies (a process worker, or a host
    taking a rare big message): big ``bytes`` of the stream are read into the
    objects the unpickler makes (``os.preadv``), one copy.
    """
    try:
        views = _segments.buffer_views(fd, table) if table else None
        reader = _big.FileReader(fd, size)
        value = pickle.Unpickler(reader, buffers=views).load()
        del views
        _segments.drop_stream(fd, table)
        return value
    finally:
        os.close(fd)


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

    Every message, both ways, is a frame (:func:`_frame`), or a segment named by
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
        self._queue: deque[bytes | _Segment] | None = None
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
        message = _frame(signal, payload, job)
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

    def _send_now(self, message: bytes | _Segment) -> None:
        """Write *message* (the lock held, or in the writer thread)."""
        try:
            if isinstance(message, bytes):
                _write_all(self._job_w, message)
                return
            job = message.job

            def check() -> None:
                if not self._open or (job is not None and self._abandoned == job[0]):
                    raise _Abandoned

            self._tag += 1
            try:
                check()  # abandoned while it waited in the queue: not even begun
                _send_segment(message, self._sock, self._tag, self._job_w, check)
            except _Abandoned:
                if job is not None and self._open:
                    self._send_now(_frame(_protocol.JOB, self._stub(job, None)))
            except ConnectionError:
                raise
            except Exception as error:
                if job is None:
                    raise
                # it could not be written (no memory...): the call fails, saying why
                why = f"{type(error).__name__}: {error}"
                self._send_now(_frame(_protocol.JOB, self._stub(job, why)))
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
        if kind == _IN_SEGMENT:
            tag, size, table = pickle.loads(payload[1:])
            fd = _receive_fd(self._sock, tag)
            if fd < 0:  # pragma: no cover - a bug of ours
                raise RuntimeError("aiointerp: a segment's descriptor was lost")
            return _load_segment(fd, size, table)
        if kind == _WITH_FILE:
            outcome = pickle.loads(payload[1:])
            fd = _receive_fd(self._sock, outcome[2])
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


class PipeChannel:
    """The worker end of a process worker's channels (in the child).

    Messages sent from several threads (log records of user threads, outcomes of
    the loop) never interleave: each is written whole under a lock. Its segments
    are written at once: only this process waits for them.
    """

    #: the worker kind, in messages
    kind = "process"
    #: the host reads this worker's result files: their descriptors cross the socket
    #: with the outcomes (:mod:`aiointerp._wire._big` closes ours once they did)
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
        header = _read_exactly(self._job_r, _HEADER)
        if header is None:
            return b"", None  # the host is gone
        size = int.from_bytes(header[1:], "little")
        if not size:
            return header[:1], None
        blob = _read_exactly(self._job_r, size)
        if blob is None:
            return b"", None
        if blob[:1] == _IN_SEGMENT:
            tag, size, table = pickle.loads(blob[1:])
            fd = _receive_fd(self._socket(), tag)
            if fd < 0:  # pragma: no cover - the host died mid-message
                return b"", None
            return header[:1], _load_segment(fd, size, table)
        return header[:1], pickle.loads(blob)

    def send(self, signal: bytes, payload: tuple[Any, ...] | None = None) -> None:
        if payload is not None:
            payload = tuple(payload)  # a named tuple pickles by reference
        in_file = (
            payload is not None and signal == _protocol.DONE and _big.in_file(payload)
        )
        # pickled before the lock is taken: a finalizer that runs meanwhile may log
        # or print, which sends through here again (the lock is not reentrant)
        message = None if in_file else _frame(signal, payload)
        with self._lock:
            try:
                if message is None:
                    assert payload is not None
                    self._send_file(signal, payload)
                    return
                if isinstance(message, bytes):
                    _write_all(self._done_w, message)
                    return
                self._tag += 1
                _send_segment(message, self._socket(), self._tag, self._done_w)
            except ConnectionError as error:  # the host is gone
                raise BrokenPipeError(str(error)) from error

    def _send_file(self, signal: bytes, outcome: tuple[Any, ...]) -> None:
        """An outcome whose result is in a file: its descriptor first, then the frame."""
        fd = outcome[2]
        self._tag += 1
        _send_fd(self._socket(), fd, self._tag)
        _big.sent(fd)
        blob = pickle.dumps((*outcome[:2], self._tag, *outcome[3:]), _PICKLE_PROTOCOL)
        _write_all(self._done_w, _inline(signal, _WITH_FILE + blob))

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

        # every record is a frame of its own: no queue to count, no wake-up byte;
        # and no budget: between calls the pipe fills, then the writer waits
        return _logs.install(put, lambda: 0, -1, levels, output)
