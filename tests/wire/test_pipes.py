"""The I/O of a process worker's channels, with real pipes and sockets, no process.

:mod:`aiointerp._wire._pipes` moves frames on pipes and descriptors on a Unix
datagram socket; the faults a dying peer causes are made here by hand: a writer
closed under the reader, a descriptor that never comes, a ``sendmsg`` that fails.
"""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Iterator

import pytest

from aiointerp._wire import _frames, _pipes, _protocol, _segments

MIB = 1 << 20


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:  # closed by the test
            pass


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        yield a, b


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_frames_cross_a_pipe_whole(pipe: tuple[int, int]) -> None:
    r, w = pipe
    message = _frames.frame(_protocol.JOB, (b"\x01" * 1000, "x"))
    assert isinstance(message, bytes)
    _pipes.write_all(w, message)
    header = _pipes.read_exactly(r, _frames.HEADER)
    assert header is not None
    signal, size = _frames.header(header)
    blob = _pipes.read_exactly(r, size)
    assert blob is not None
    assert (signal, _frames.decode(blob)) == (
        _protocol.JOB,
        (b"", (b"\x01" * 1000, "x")),
    )


def test_a_short_write_is_followed_by_the_rest(pipe: tuple[int, int]) -> None:
    r, w = pipe
    written: list[int] = []
    data = bytes(range(256)) * 40  # fits in the pipe: nobody reads it yet
    real = os.write

    def short_write(fd: int, view: memoryview) -> int:
        done = real(fd, view[:1000])  # as a pipe does when it is nearly full
        written.append(done)
        return done

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "write", short_write)
        _pipes.write_all(w, data)
    assert len(written) == -(-len(data) // 1000)
    os.close(w)
    assert _pipes.read_exactly(r, len(data)) == data


def test_a_writer_closed_under_the_reader_is_end_of_file(pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.write(w, b"J\x10\x00")  # a header cut short: the writer died
    os.close(w)
    assert _pipes.read_exactly(r, _frames.HEADER) is None
    assert _pipes.read_exactly(r, 1) is None


def test_a_write_to_a_closed_reader_is_refused(pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.close(r)
    with pytest.raises(BrokenPipeError):
        _pipes.write_all(w, b"J\0\0\0\0")


def test_a_segment_crosses_as_a_descriptor_then_a_frame(
    pipe: tuple[int, int], sockets: tuple[socket.socket, socket.socket]
) -> None:
    r, w = pipe
    a, b = sockets
    data = b"\x02" * (3 * MIB)
    segment = _frames.frame(_protocol.DONE, (data, memoryview(bytearray(MIB))))
    assert isinstance(segment, _frames.Segment)
    before = _open_fds()
    _pipes.send_segment(segment, a, 4, w)
    assert _open_fds() == before  # ours is closed: the one in flight holds the file
    header = _pipes.read_exactly(r, _frames.HEADER)
    assert header is not None
    signal, size = _frames.header(header)
    blob = _pipes.read_exactly(r, size)
    assert blob is not None
    marker, (tag, stream, table) = _frames.decode(blob)
    assert (signal, marker, tag) == (_protocol.DONE, _frames.IN_SEGMENT, 4)
    fd = _pipes.receive_fd(b, tag)
    assert fd >= 0
    got, view = _pipes.load_segment(fd, stream, table)
    assert got == data
    assert bytes(view) == bytes(MIB)
    assert _open_fds() == before  # load_segment closed it


def test_an_abandoned_segment_sends_nothing(
    pipe: tuple[int, int], sockets: tuple[socket.socket, socket.socket]
) -> None:
    r, w = pipe
    a, b = sockets
    segment = _frames.frame(_protocol.JOB, (b"\x03" * (3 * _segments.CHUNK),))
    assert isinstance(segment, _frames.Segment)
    checks = 0

    def check() -> None:
        nonlocal checks
        checks += 1
        if checks == 2:  # after the first chunk
            raise _pipes.Abandoned

    before = _open_fds()
    with pytest.raises(_pipes.Abandoned):
        _pipes.send_segment(segment, a, 1, w, check)
    assert _open_fds() == before  # the segment is gone
    assert _pipes.receive_fd(b, 1) == -1  # no descriptor
    os.set_blocking(r, False)
    with pytest.raises(BlockingIOError):  # no frame
        os.read(r, 1)


def test_a_failed_sendmsg_sends_no_frame_and_leaks_no_segment(
    pipe: tuple[int, int],
    sockets: tuple[socket.socket, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r, w = pipe
    a, _ = sockets
    segment = _frames.frame(_protocol.JOB, (b"\x04" * (2 * MIB),))
    assert isinstance(segment, _frames.Segment)

    def refused(*args: object) -> None:
        raise ConnectionRefusedError("the other end is gone")

    monkeypatch.setattr(socket, "send_fds", refused)
    before = _open_fds()
    with pytest.raises(ConnectionRefusedError):
        _pipes.send_segment(segment, a, 1, w)
    assert _open_fds() == before
    os.set_blocking(r, False)
    with pytest.raises(BlockingIOError):
        os.read(r, 1)


def test_a_descriptor_that_never_came_is_minus_one(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    _, b = sockets
    assert _pipes.receive_fd(b, 1) == -1  # never waits


def test_descriptors_nobody_took_are_closed_on_the_way(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    a, b = sockets
    before = _open_fds()
    files = [_segments.create() for _ in range(3)]
    for tag, fd in enumerate(files, 1):
        _pipes.send_fd(a, fd, tag)
        os.close(fd)
    fd = _pipes.receive_fd(b, 3)  # 1 and 2 were never taken: closed
    assert fd >= 0
    os.close(fd)
    assert _open_fds() == before


def test_a_later_tag_means_the_one_asked_for_was_lost(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    a, b = sockets
    before = _open_fds()
    fd = _segments.create()
    _pipes.send_fd(a, fd, 5)
    os.close(fd)
    assert _pipes.receive_fd(b, 4) == -1  # 5 came instead: 4 will never come
    assert _open_fds() == before


def test_a_datagram_without_a_descriptor_is_a_lost_one(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    a, b = sockets
    a.send((2).to_bytes(_frames.TAG, "little"))  # its descriptor did not cross
    assert _pipes.receive_fd(b, 2) == -1
    a.send(b"")
    assert _pipes.receive_fd(b, 2) == -1


def test_a_segment_without_buffers_loads_from_its_stream() -> None:
    value = [b"\x05" * MIB, "text"]
    blob = pickle.dumps(value, _frames.PICKLE_PROTOCOL)
    fd, size, table = _segments.write([blob], [])
    assert table == ()
    assert _pipes.load_segment(fd, size, table) == value
