"""The frames of a process worker's pipes, as a codec: bytes in, bytes out, no process.

The codec is :mod:`aiointerp._wire._frames`; moving the bytes (pipes, descriptors) is
:mod:`aiointerp._wire._pipes`, tested with real pipes in ``test_pipes.py``.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest

from aiointerp._wire import _frames, _protocol, _segments


def _round_trip(signal: bytes, payload: Any) -> tuple[bytes, Any]:
    """What a receiver makes of the frame of *payload*: ``(signal, payload)``."""
    message = _frames.frame(signal, payload)
    assert isinstance(message, bytes)
    got, size = _frames.header(message[: _frames.HEADER])
    assert size == len(message) - _frames.HEADER
    if not size:
        return got, None
    marker, value = _frames.decode(message[_frames.HEADER :])
    assert marker == b""
    return got, value


def _unpack(segment: _frames.Segment) -> Any:
    """What a receiver makes of *segment*'s stream and buffers."""
    stream = b"".join(bytes(piece) for piece in segment.pieces)
    return pickle.loads(stream, buffers=segment.buffers)


SMALL = [
    pytest.param((), id="empty"),
    pytest.param((1, 2.5, None, True, "text ☃", b"bytes"), id="scalars"),
    pytest.param(((1, (2, (3,))),), id="nested"),
    pytest.param(([1, 2], {"a": {3}}), id="containers"),
    pytest.param((2**100, "\ud800"), id="big-int-and-surrogate"),
    pytest.param(tuple(range(200)), id="many-items"),
]


@pytest.mark.parametrize("payload", SMALL)
def test_small_payloads_round_trip_in_one_frame(payload: tuple[Any, ...]) -> None:
    assert _round_trip(_protocol.JOB, payload) == (_protocol.JOB, payload)


def test_no_payload_is_a_bare_header() -> None:
    message = _frames.frame(_protocol.QUIT, None)
    assert message == _protocol.QUIT + b"\0\0\0\0"
    assert _frames.header(message) == (_protocol.QUIT, 0)


def test_a_payload_up_to_inline_max_stays_in_its_frame() -> None:
    # a list: not _small's fast way, the encoder's, with the same bound
    overhead = len(pickle.dumps([b""], _frames.PICKLE_PROTOCOL))
    for extra in range(-2, 8):
        data = b"x" * (_frames.INLINE_MAX - overhead - 4 + extra)
        message = _frames.frame(_protocol.DONE, ([data],))
        blob = pickle.dumps(([data],), _frames.PICKLE_PROTOCOL)
        if len(blob) <= _frames.INLINE_MAX:
            assert message == _frames.inline(_protocol.DONE, blob)
        else:
            assert isinstance(message, _frames.Segment)


def test_a_big_payload_becomes_a_segment_whose_big_bytes_are_not_copied() -> None:
    data = b"\x01" * (4 * _frames.INLINE_MAX)
    job = (7, None, b"func", _protocol.SHARED, (data,))
    segment = _frames.frame(_protocol.JOB, (data, [1, 2]), job)
    assert isinstance(segment, _frames.Segment)
    assert segment.signal == _protocol.JOB
    assert segment.job is job
    assert not segment.buffers
    assert any(piece is data for piece in segment.pieces)  # by reference
    assert segment.size == sum(len(piece) for piece in segment.pieces)
    assert _unpack(segment) == (data, [1, 2])


def test_a_big_memoryview_goes_out_of_band_as_a_view() -> None:
    memory = bytearray(b"\x02" * _segments.OOB_MIN)
    segment = _frames.frame(_protocol.DONE, (memoryview(memory), "tail"))
    assert isinstance(segment, _frames.Segment)
    (buffer,) = segment.buffers
    assert buffer.nbytes == len(memory)
    assert segment.size == buffer.nbytes + sum(len(p) for p in segment.pieces)
    memory[0] = 9  # a view of the caller's memory, not a copy
    assert buffer[0] == 9
    view, tail = _unpack(segment)
    assert type(view) is memoryview
    assert bytes(view) == bytes(memory)
    assert tail == "tail"


def test_small_and_strided_memoryviews_stay_in_band() -> None:
    small = memoryview(b"\x03" * 100)
    strided = memoryview(bytearray(range(200)))[::2]
    got = _round_trip(_protocol.DONE, ([small], strided))[1]
    assert type(got[0][0]) is memoryview
    assert bytes(got[0][0]) == bytes(small)
    assert bytes(got[1]) == bytes(strided)


def test_what_cannot_be_pickled_is_refused_before_anything_is_made() -> None:
    with pytest.raises(TypeError):
        _frames.frame(_protocol.JOB, (threading.Lock(),))
    view = memoryview(bytearray(10))
    view.release()
    with pytest.raises(ValueError, match="released"):
        _frames.frame(_protocol.JOB, ([view],))
    # and the encoder is ready for the next message
    assert _round_trip(_protocol.JOB, ([1],)) == (_protocol.JOB, ([1],))


class _SendsWhilePickled:
    """A value whose pickling sends a message itself (a finalizer that logs...)."""

    def __reduce__(self) -> tuple[Any, ...]:
        inner = _frames.frame(_protocol.LOG, (["inner"],))
        assert isinstance(inner, bytes)
        return (str, ("outer",))


def test_a_message_made_while_one_is_pickled_does_not_disturb_it() -> None:
    data = b"\x04" * (2 * _frames.INLINE_MAX)
    segment = _frames.frame(_protocol.DONE, (data, _SendsWhilePickled()))
    assert isinstance(segment, _frames.Segment)
    assert _unpack(segment) == (data, "outer")


def test_a_segment_frame_names_its_descriptor() -> None:
    table = ((4096, 100), (4224, 7))
    message = _frames.segment_frame(_protocol.JOB, 12, 300, table)
    signal, size = _frames.header(message[: _frames.HEADER])
    assert (signal, size) == (_protocol.JOB, len(message) - _frames.HEADER)
    assert _frames.decode(message[_frames.HEADER :]) == (
        _frames.IN_SEGMENT,
        (12, 300, table),
    )


def test_a_file_frame_carries_the_outcome_with_the_descriptor_s_tag() -> None:
    outcome = (3, _protocol.OK_PICKLED, 17, (1000, 55), False)  # 17: the worker's fd
    message = _frames.file_frame(_protocol.DONE, outcome, 5)
    marker, got = _frames.decode(message[_frames.HEADER :])
    assert marker == _frames.WITH_FILE
    assert got == (3, _protocol.OK_PICKLED, 5, (1000, 55), False)


def test_a_pickle_never_starts_with_a_marker() -> None:
    blob = pickle.dumps((), _frames.PICKLE_PROTOCOL)
    assert blob[:1] not in (_frames.IN_SEGMENT, _frames.WITH_FILE)


@pytest.mark.parametrize("cut", [0, 1, 4, 6])
def test_a_truncated_header_is_refused(cut: int) -> None:
    message = _frames.frame(_protocol.JOB, (1,))
    with pytest.raises(ValueError, match="a frame's header has 5 bytes"):
        _frames.header(message[:cut])


def test_a_header_says_the_length_little_endian() -> None:
    assert _frames.header(b"J\x01\x02\x00\x00") == (b"J", 0x0201)
    assert _frames.header(b"J\xff\xff\xff\xff") == (b"J", 2**32 - 1)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x00garbage", id="not-a-pickle"),
        pytest.param(b"S\x00garbage", id="garbled-segment-reference"),
        pytest.param(b"Fnot a pickle", id="garbled-file-reference"),
        pytest.param(
            pickle.dumps(("a", "b" * 100), _frames.PICKLE_PROTOCOL)[:-3],
            id="truncated",
        ),
    ],
)
def test_a_garbled_payload_is_refused(payload: bytes) -> None:
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        _frames.decode(payload)
