"""Segments and the pickle files that read them, with the faults of other platforms.

:mod:`aiointerp._wire._segments` (files in memory) and :mod:`aiointerp._wire._pieces`
(a pickle's files). Where Linux has no fault to give (a ``memfd``, ``preadv`` and
``MADV_REMOVE`` always there, a file in memory written whole), the module
attribute is replaced to take the other way.
"""

from __future__ import annotations

import mmap
import os
import pickle

import pytest

from aiointerp._wire import _pieces, _pipes, _segments

MIB = 1 << 20


def _segment(stream: bytes, buffers: list[bytes]) -> tuple[int, int, _segments.Table]:
    return _segments.write([stream], [memoryview(b) for b in buffers])


def test_a_segment_lays_its_buffers_out_after_its_stream() -> None:
    fd, size, table = _segment(b"s" * 100, [b"a" * 10, b"b" * 20])
    try:
        assert size == 100
        assert table == ((mmap.PAGESIZE, 10), (mmap.PAGESIZE + 64, 20))
        assert os.pread(fd, 100, 0) == b"s" * 100
        views = _segments.buffer_views(fd, table)
        assert [bytes(v) for v in views] == [b"a" * 10, b"b" * 20]
        views[0][0] = ord("z")  # shared and writable: the file sees it
        assert os.pread(fd, 1, mmap.PAGESIZE) == b"z"
        del views
    finally:
        os.close(fd)


def test_without_memfd_a_segment_is_a_deleted_temporary_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_memfd(name: str, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", no_memfd)
    fd = _segments.create()
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
        assert "aiointerp-segment-" in target
        assert target.endswith("(deleted)")
        os.write(fd, b"data")
        assert os.pread(fd, 4, 0) == b"data"
    finally:
        os.close(fd)
    monkeypatch.delattr(os, "memfd_create")  # macOS: no such function
    fd = _segments.create("aiointerp-result")
    os.close(fd)


def test_a_short_pwritev_is_followed_by_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = os.pwritev
    calls: list[int] = []

    def short(fd: int, buffers: list[bytes], offset: int) -> int:
        calls.append(len(buffers))
        whole = b"".join(buffers)
        return real(fd, [whole[: len(whole) // 3]], offset)

    monkeypatch.setattr(os, "pwritev", short)
    pieces = [bytes([n]) * 1000 for n in range(5)]
    fd, size, _table = _segments.write(pieces, [])
    try:
        assert calls == [5]
        assert size == 5000
        assert os.pread(fd, size, 0) == b"".join(pieces)
    finally:
        os.close(fd)


def test_checks_run_between_chunks_and_abandon_a_segment() -> None:
    checks = 0

    def check() -> None:
        nonlocal checks
        checks += 1
        if checks == 3:
            raise _pipes.Abandoned

    big = memoryview(bytearray(4 * _segments.CHUNK))
    fd_before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(_pipes.Abandoned):
        _segments.write([b"stream"], [big], check)
    assert set(os.listdir("/proc/self/fd")) == fd_before  # closed


def _big_stream_segment() -> tuple[int, int, _segments.Table]:
    stream = pickle.dumps((b"\x01" * (2 * MIB), "x"), 5)
    return _segment(stream, [b"\x02" * MIB])


def test_a_big_stream_s_pages_are_freed_once_read() -> None:
    fd, _size, table = _big_stream_segment()
    try:
        _segments.drop_stream(fd, table)
        assert os.pread(fd, 16, 0) == bytes(16)  # gone
        assert os.pread(fd, 4, table[0][0]) == b"\x02" * 4  # the buffers stay
    finally:
        os.close(fd)


def test_a_stream_stays_where_its_pages_cannot_be_freed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fd, size, table = _big_stream_segment()
    stream = os.pread(fd, size, 0)
    try:
        monkeypatch.delattr(mmap, "MADV_REMOVE")  # not Linux
        _segments.drop_stream(fd, table)
        assert os.pread(fd, size, 0) == stream

        def no_mapping(*args: object, **kwargs: object) -> mmap.mmap:
            raise OSError(12, "Cannot allocate memory")

        monkeypatch.setattr(mmap, "mmap", no_mapping)
        _segments.drop_stream(fd, table)
        assert os.pread(fd, size, 0) == stream
    finally:
        os.close(fd)


def test_a_small_stream_is_not_worth_freeing() -> None:
    fd, _size, table = _segment(b"s" * 100, [b"a" * 10])
    try:
        _segments.drop_stream(fd, table)
        _segments.drop_stream(fd, ())
        assert os.pread(fd, 100, 0) == b"s" * 100
    finally:
        os.close(fd)


@pytest.mark.parametrize("preadv", [True, False], ids=["preadv", "pread"])
def test_a_file_reader_copies_big_buffers_in_slices(
    preadv: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pieces, "_HAVE_PREADV", preadv)  # False: macOS < 11
    data = bytes(range(256)) * (3 * _pieces.READ_CHUNK // 256 + 1)
    fd = _segments.create()
    try:
        os.write(fd, data)
        paced = 0

        def pace() -> None:
            nonlocal paced
            paced += 1

        reader = _pieces.FileReader(fd, len(data), pace)
        buffer = bytearray(len(data) + 10)  # more than the file holds
        assert reader.readinto(buffer) == len(data)
        assert buffer[: len(data)] == data
        assert paced == 5  # 4 slices, then the end of the file
        assert reader.read() == b""
    finally:
        os.close(fd)
