"""A process worker's link and channel face to face, in one process: the faults.

The link is :mod:`aiointerp._kinds._pipelink` (its cross-thread state is its
``_Outbox``), the channel :mod:`aiointerp._inside._ends`. With no child, a test can
pause the writer thread at a chunk, close the link under it, lose a descriptor or
refuse a thread, and read exactly what the worker would have read.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _handshake import HANG

from aiointerp._inside import _ends
from aiointerp._kinds import _pipelink
from aiointerp._wire import _frames, _pipes, _protocol, _segments

MIB = 1 << 20
#: a payload big enough for the writer thread (more than WRITE_ON_LOOP_MAX)
BIG = b"\x01" * (2 * _pipelink.WRITE_ON_LOOP_MAX)


def _job(job_id: int, payload: Any = BIG) -> tuple[Any, ...]:
    return (job_id, None, b"func", _protocol.SHARED, (payload,))


@pytest.fixture
def ends() -> Iterator[tuple[_pipelink.PipeLink, _ends.PipeChannel]]:
    """A link, and the channel a child would make of the link's child ends."""
    link = _pipelink.PipeLink()
    job_r, done_w, cancel_r, cancel_w, _, sock = link.child_fds
    channel = _ends.PipeChannel(job_r, done_w, cancel_r, cancel_w, sock)
    try:
        yield link, channel
    finally:
        if channel._sock is not None:
            channel._sock.detach()  # the link closes the child's ends
        link.close()
        _join_writers()


def _join_writers() -> None:
    for thread in threading.enumerate():
        if thread.name == "aiointerp-segment-writer":
            thread.join(HANG)


class _Paused:
    """Pauses the writer of each segment after its first chunk, until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writing = threading.Event()
        self.release = threading.Event()
        write = _segments.write

        def paused_write(
            pieces: Any, buffers: Any, check: Callable[[], None] = lambda: None
        ) -> Any:
            def pause() -> None:
                self.writing.set()
                assert self.release.wait(HANG)
                check()

            return write(pieces, buffers, pause)

        monkeypatch.setattr(_segments, "write", paused_write)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_a_link_that_cannot_be_made_leaves_no_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    def no_socket(*args: Any) -> Any:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(socket, "socketpair", no_socket)
    with pytest.raises(OSError, match="Too many open files"):
        _pipelink.PipeLink()  # no_leaks: its pipes are closed


# -- the outbox: states and transitions


def test_the_outbox_goes_through_its_states() -> None:
    outbox = _pipelink._Outbox()
    assert outbox.state == _pipelink.IDLE
    assert outbox.writable()
    outbox.check((1,))  # wanted
    with outbox.lock:
        outbox.hand_over(b"big")
    assert outbox.state == _pipelink.WRITING
    assert outbox.next() == (b"big", False)
    assert outbox.next() == (None, False)  # the writer thread ends
    assert outbox.state == _pipelink.IDLE
    with outbox.lock:
        outbox.hand_over(b"big")
    assert not outbox.close()  # the writer thread closes the descriptors
    assert outbox.state == _pipelink.CLOSING
    assert not outbox.writable()
    with pytest.raises(_pipes.Abandoned):
        outbox.check(None)
    assert outbox.next() == (b"big", False)  # drained, not written
    assert outbox.next() == (None, True)
    assert outbox.state == _pipelink.CLOSED
    assert not outbox.close()  # once


def test_an_idle_outbox_closes_at_once_and_abandons_what_was_cancelled() -> None:
    outbox = _pipelink._Outbox()
    outbox.abandon(3)
    with pytest.raises(_pipes.Abandoned):
        outbox.check((3,))
    outbox.check((4,))
    assert (outbox.next_tag(), outbox.next_tag()) == (1, 2)
    assert outbox.close()
    assert outbox.state == _pipelink.CLOSED
    assert not outbox.close()


# -- the writer thread, and what happens around it


def test_a_job_cancelled_in_the_queue_is_replaced_by_a_stub(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link, channel = ends
    paused = _Paused(monkeypatch)
    link.send(_protocol.JOB, _job(1))
    assert paused.writing.wait(HANG)
    link.send(_protocol.JOB, _job(2))  # queued behind job 1
    link.cancel(2)
    paused.release.set()
    assert channel.receive() == (_protocol.JOB, _job(1))
    assert channel.receive() == (
        _protocol.JOB,
        (2, None, b"func", _protocol.ABANDONED, None),
    )
    assert not link.unread()


def test_close_while_the_writer_runs_leaves_the_descriptors_to_it(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link, _channel = ends
    paused = _Paused(monkeypatch)
    link.send(_protocol.JOB, _job(1))
    assert paused.writing.wait(HANG)
    link.send(_protocol.QUIT)  # queued
    link.close()
    assert _is_open(link._job_w)  # the writer thread still holds it
    assert link.unread()  # QUIT waits in the queue
    link.send(_protocol.QUIT)  # closed: dropped
    paused.release.set()
    _join_writers()
    assert not _is_open(link._job_w)  # closed by the writer as it ended
    assert not link.unread()
    link.close()  # again: nothing


def test_without_a_thread_the_segment_is_written_by_the_sender(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link, channel = ends

    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    reader = threading.Thread(target=lambda: received.append(channel.receive()))
    received: list[Any] = []
    monkeypatch.undo()  # the test's own reader starts; the link's may not
    reader.start()
    monkeypatch.setattr(threading.Thread, "start", no_thread)
    link.send(_protocol.JOB, _job(1))  # written here, through the empty pipe
    monkeypatch.undo()
    reader.join(HANG)
    assert received == [(_protocol.JOB, _job(1))]
    assert link._outbox.state == _pipelink.IDLE
    link.send(_protocol.QUIT)  # and the link serves on
    assert channel.receive() == (_protocol.QUIT, None)


def test_a_message_of_no_job_that_cannot_be_written_is_dropped_by_the_writer(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link, channel = ends

    def no_memory(name: str = "") -> int:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(_segments, "create", no_memory)
    link.send(_protocol.LEVELS, (BIG,))  # no job: nobody to tell
    link.send(_protocol.QUIT)
    assert channel.receive() == (_protocol.QUIT, None)
    _join_writers()
    # on the sender's own thread, the sender hears of it
    small = b"\x02" * (_frames.INLINE_MAX + 1)
    with pytest.raises(OSError, match="Cannot allocate memory"):
        link.send(_protocol.LEVELS, (small,))


def test_a_job_whose_segment_cannot_be_made_fails_alone(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link, channel = ends

    def no_memory(name: str = "") -> int:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(_segments, "create", no_memory)
    small = b"\x02" * (_frames.INLINE_MAX + 1)  # written on the sender's thread
    link.send(_protocol.JOB, _job(1, small))
    why = "OSError: [Errno 12] Cannot allocate memory"
    assert channel.receive() == (
        _protocol.JOB,
        (1, None, b"func", _protocol.ABANDONED, why),
    )


def test_a_dead_reader_marks_the_job_unread(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link, channel = ends
    paused = _Paused(monkeypatch)
    link.send(_protocol.JOB, _job(1))
    assert paused.writing.wait(HANG)
    link.close_child_ends()  # the child died: its end of the job pipe is closed
    channel._sock = None
    paused.release.set()
    _join_writers()
    assert link.unread()  # refused: the job never reached it
    link.send(_protocol.QUIT)  # refused again, quietly
    assert link.unread()


def test_unread_bytes_are_counted_where_the_kernel_can(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fcntl

    link, channel = ends
    assert not link.unread()
    link.send(_protocol.QUIT)
    assert link.unread()  # the child has not read it

    def no_fionread(*args: Any) -> None:
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")

    monkeypatch.setattr(fcntl, "ioctl", no_fionread)  # not Linux
    assert not link.unread()  # unknown: as if read
    monkeypatch.undo()
    assert channel.receive() == (_protocol.QUIT, None)


# -- lost descriptors


def test_the_channel_sees_the_host_gone_when_a_descriptor_never_came(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
) -> None:
    link, channel = ends
    # the host died between a segment's descriptor and its frame
    _pipes.write_all(link._job_w, _frames.segment_frame(_protocol.JOB, 1, 10, ()))
    assert channel.receive() == (b"", None)


@pytest.mark.anyio
async def test_the_link_says_a_lost_segment_descriptor_is_a_bug(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
) -> None:
    link, channel = ends
    reader = link.reader()
    try:
        channel.send(_protocol.LOG, (BIG,))  # a segment
        stolen = _pipes.receive_fd(link._sock, 1)  # taken by someone else
        os.close(stolen)
        assert await reader.read() == _protocol.LOG
        with pytest.raises(RuntimeError, match="a segment's descriptor was lost"):
            link.take()
        channel.send(_protocol.LOG, (BIG,))
        assert await reader.read() == _protocol.LOG
        assert link.take() == (BIG,)  # the next one comes
    finally:
        reader.close()


@pytest.mark.anyio
async def test_a_lost_result_file_is_minus_one_for_decode_result(
    ends: tuple[_pipelink.PipeLink, _ends.PipeChannel],
) -> None:
    link, channel = ends
    reader = link.reader()
    try:
        fd = _segments.create("aiointerp-result")
        outcome = (1, _protocol.OK_PICKLED, fd, (0, os.fstat(fd).st_ino), False)
        channel.send(_protocol.DONE, outcome)
        os.close(fd)
        stolen = _pipes.receive_fd(link._sock, 1)
        os.close(stolen)
        assert await reader.read() == _protocol.DONE
        assert link.take()[2] == -1
    finally:
        reader.close()


def test_a_received_file_closed_meanwhile_is_dropped_quietly() -> None:
    fd = _segments.create("aiointerp-result")
    received = _pipelink._ReceivedFile(fd)
    os.close(fd)  # by whoever took it over
    del received  # no error: PytestUnraisableExceptionWarning would fail the test
