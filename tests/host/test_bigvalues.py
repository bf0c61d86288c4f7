"""Big arguments and results: exact round trips, pickled and unpickled off the event loop.

The wire format is :mod:`aiointerp._wire._big`, the host side :mod:`aiointerp._host._bigvalues`.
Round trips run real interpreters on every event loop; the structural tests check,
without timing anything, where the big work happens: the probes of
``_funcs_bigvalues`` record the thread that pickles an argument or unpickles a result.
How much the loop lags is measured in ``benchmarks/loop_lag.py``.
"""

from __future__ import annotations

import os
import pickle
import re
import threading
from collections.abc import Iterator
from typing import Any

import _funcs_bigvalues as funcs
import _funcs_core
import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest

from aiointerp import BrokenWorkerError, InterpreterPool, NotShareableError
from aiointerp._host import _bigvalues
from aiointerp._wire import _big, _encoding, _pieces, _protocol, _spill


def stable_id(value: object) -> str:
    """A test id that is the same in every process (pytest-xdist compares them)."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


MIB = 1 << 20
#: more items than a shareable value may have to cross as it is
BULKY_ITEMS = _big.SHARED_ITEMS_MAX + 1


def _result_files() -> set[int]:
    """This process's open result files (memfds, or deleted temporary files)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "aiointerp-result" in target:
            found.add(int(fd))
    return found


@pytest.fixture(autouse=True)
def _probes() -> Iterator[None]:
    """Fresh probe records; no result file left open once the test's pools closed."""
    before = _result_files()
    funcs.pickled_in.clear()
    funcs.loaded_in.clear()
    yield
    funcs.on_load = funcs.on_pickle = None
    _big.result_file.close()  # the host's own, made by the unit tests
    assert _result_files() <= before


# -- the encoding, in this interpreter


SMALL_SHAREABLE = [
    (),
    (1, "a", b"b", None, True, 1.5),
    (memoryview(b"v"),),
    ((1, (2,)),),
]
SMALL_OTHER = [([1, 2],), ({"a": 1},), (bytearray(b"x"),), (2**64,), ((1, [2]),)]


@pytest.mark.parametrize("args", SMALL_SHAREABLE + SMALL_OTHER, ids=stable_id)
def test_classify_agrees_with_is_shareable_for_small_values(
    args: tuple[Any, ...],
) -> None:
    expected = _big.SMALL if _encoding.is_shareable(args) else _big.OTHER
    assert _big.classify(args) == expected


def test_classify_bounds_the_walk() -> None:
    flat = tuple(range(_big.SHARED_ITEMS_MAX))
    assert _big.classify((flat,)) == _big.BULKY  # with the outer tuple's item
    assert _big.classify(flat) == _big.SMALL
    nested = tuple((i, i) for i in range(_big.SHARED_ITEMS_MAX // 3 + 1))
    assert _big.classify(nested) == _big.BULKY
    # bytes count for results only (the queue copies them into the host)
    big = b"x" * (_big.SHARED_BYTES_MAX + 1)
    assert _big.classify((big,)) == _big.SMALL
    assert _big.classify(big, False, max_bytes=_big.SHARED_BYTES_MAX) == (_big.BULKY)
    assert _big.classify(memoryview(b"v"), views=False) == _big.OTHER


@pytest.mark.anyio
@pytest.mark.parametrize("args", SMALL_SHAREABLE + SMALL_OTHER, ids=stable_id)
async def test_small_arguments_are_encoded_as_before(args: tuple[Any, ...]) -> None:
    func = _funcs_core.identity
    assert await _bigvalues.encode_call(func, args) == _encoding.encode_call(func, args)


@pytest.mark.anyio
async def test_bulky_arguments_are_pickled_in_a_thread() -> None:
    args = (*range(50_000), funcs.PickledHere())  # too many items to walk
    _, mode, payload = await _bigvalues.encode_call(_funcs_core.identity, args)
    assert funcs.pickled_in
    assert threading.get_ident() not in funcs.pickled_in
    assert mode == _big.FRAMES
    decoded = _big.decode_args(mode, payload)
    assert decoded[:-1] == args[:-1]
    assert type(decoded[-1]) is funcs.PickledHere


@pytest.mark.anyio
async def test_a_pickle_too_slow_for_the_loop_is_made_again_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_bigvalues, "LOOP_BUDGET", -1.0)  # over budget at once
    args = ([funcs.PickledHere(), *range(50_000)],)
    _, mode, payload = await _bigvalues.encode_call(_funcs_core.identity, args)
    loop_thread = threading.get_ident()
    assert funcs.pickled_in[0] == loop_thread  # the first try, given up
    assert funcs.pickled_in[1] != loop_thread
    assert mode == _big.FRAMES
    assert _big.decode_args(mode, payload)[0][1:] == args[0][1:]
    monkeypatch.undo()
    small = ({"a": [1, 2]},)  # the loop's pickler is reused after it gave up
    _, mode, blob = await _bigvalues.encode_call(_funcs_core.identity, small)
    assert (mode, blob) == (_protocol.PICKLED, pickle.dumps(small, 5))


@pytest.mark.anyio
async def test_big_buffers_are_sent_by_reference() -> None:
    buffer = bytearray(b"\x07" * MIB)
    data = b"\x08" * MIB
    args = ([buffer, data, 1],)
    _, mode, pieces = await _bigvalues.encode_call(_funcs_core.identity, args)
    assert mode == _big.FRAMES
    views = [p for p in pieces if type(p) is memoryview]
    assert [view.obj for view in views] == [buffer]  # not copied on the host
    assert any(p is data for p in pieces)
    del views
    decoded = _big.decode_args(mode, pieces)[0]
    assert decoded == [buffer, data, 1]
    assert type(decoded[0]) is bytearray
    assert decoded[0] is not buffer


@pytest.mark.anyio
async def test_out_of_band_buffers_are_sent_by_reference_and_copied_by_the_worker() -> (
    None
):
    data = bytearray(b"\x07" * MIB)
    args = (funcs.Blob(data), 1)
    _, mode, payload = await _bigvalues.encode_call(_funcs_core.identity, args)
    assert mode == _protocol.BUFFERS
    pieces, buffers = payload
    assert [buffer.obj for buffer in buffers] == [data]  # not copied on the host
    assert sum(len(piece) for piece in pieces) < 1000  # the data is not in the pickle
    del buffers
    blob, one = _big.decode_args(mode, payload)
    assert one == 1
    assert funcs.blob_info(blob) == ("bytearray", MIB, False)  # the worker's copy
    assert blob.data == data
    blob.data[0] = 0
    assert data[0] == 7


@pytest.mark.anyio
async def test_unpicklable_bulky_arguments_raise_not_shareable() -> None:
    args = (tuple(range(BULKY_ITEMS)), threading.Lock())
    with pytest.raises(NotShareableError, match="arguments of"):
        await _bigvalues.encode_call(_funcs_core.identity, args)


def test_small_results_are_encoded_as_before() -> None:
    for value in (5, "text", (1, b"x"), [1, {2}], memoryview(b"view")):
        outcome = _spill.encode_result(1, value)
        assert not _big.in_file(outcome)
        if type(value) is memoryview:
            value = value.tobytes()
        expected = (
            (1, _protocol.OK_SHARED, value, None, False)
            if _encoding.is_shareable(value)
            else (1, _protocol.OK_PICKLED, pickle.dumps(value, 5), None, False)
        )
        assert outcome == expected


@pytest.mark.anyio
async def test_a_big_result_is_sent_in_a_file_and_unpickled_in_a_thread() -> None:
    value = funcs.probed_ints(50_000)
    outcome = _spill.encode_result(1, value)
    assert _big.in_file(outcome)
    fd, (size, _) = outcome[2], outcome[3]
    assert os.fstat(fd).st_size == size >= _big.SPILL_MIN
    result = await _bigvalues.decode_result(outcome, funcs.probed_ints)
    assert result == ["probe", *range(50_000), "probe"]
    assert len(funcs.loaded_in) == 2
    assert threading.get_ident() not in funcs.loaded_in
    assert os.fstat(fd).st_size == 0  # its memory freed once read
    _big.decode_args(_protocol.SHARED, ())  # the next call closes the file
    assert not _result_files()


@pytest.mark.anyio
async def test_out_of_band_buffers_of_a_result_are_mapped_not_copied() -> None:
    outcome = _spill.encode_result(1, [funcs.make_blob(MIB), b"\x01" * MIB])
    assert _big.in_file(outcome)
    fd, (size, _, table) = outcome[2], outcome[3]
    assert size < table[0][0]  # the stream first, then the blob's data apart
    assert [n for _, n in table] == [MIB]
    assert os.fstat(fd).st_size == table[0][0] + MIB
    blob, data = await _bigvalues.decode_result(outcome, funcs.make_blob)
    assert funcs.blob_info(blob) == ("memoryview", MIB, True)
    assert blob.data == b"\x09" * MIB
    assert data == b"\x01" * MIB
    assert os.fstat(fd).st_size > 0  # the mapped pages stay, with the file
    _big.decode_args(_protocol.SHARED, ())  # the next call closes the file
    assert not _result_files()
    assert blob.data[0] == 9  # the mapping outlives every descriptor


@pytest.mark.anyio
async def test_a_result_file_closed_too_early_is_reported(tmp_path: Any) -> None:
    outcome = _spill.encode_result(1, list(range(50_000)))
    fd = outcome[2]
    _big.result_file.close()
    with pytest.raises(BrokenWorkerError, match="was lost"):
        await _bigvalues.decode_result(outcome, funcs.ints)
    # the number now names another file: it is neither read nor emptied
    other = os.open(tmp_path / "other", os.O_CREAT | os.O_RDWR)
    if other != fd:
        os.dup2(other, fd)
        os.close(other)
    try:
        os.write(fd, b"not a result")
        with pytest.raises(BrokenWorkerError, match="was lost"):
            await _bigvalues.decode_result(outcome, funcs.ints)
        assert os.fstat(fd).st_size == len(b"not a result")
    finally:
        os.close(fd)


def test_piece_reader_reads_across_pieces() -> None:
    reader = _pieces.PieceReader([b"ab", memoryview(bytearray(b"cde")), b"f\ng"])
    assert reader.read(1) == b"a"
    assert reader.read(3) == b"bcd"
    target = bytearray(2)
    assert reader.readinto(target) == 2
    assert target == b"ef"
    assert reader.readline() == b"\n"
    assert reader.read() == b"g"
    assert reader.read(5) == b""


# -- through a pool


ROUND_TRIPS = [
    pytest.param(bytearray(b"\x01\x02" * (2 * MIB)), id="bytearray"),
    pytest.param(b"\x03" * (4 * MIB), id="bytes"),
    pytest.param([b"\x04" * MIB, bytearray(MIB)], id="list-of-buffers"),
    pytest.param(list(range(300_000)), id="list-of-ints"),
    pytest.param(tuple(range(100_000)), id="tuple-of-ints"),
    pytest.param("é" * MIB, id="str"),
    pytest.param(funcs.mixed(MIB), id="dict-of-buffer-and-list"),
    pytest.param([funcs.Blob(bytearray(b"\x02" * MIB)), 3], id="out-of-band"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("value", ROUND_TRIPS)
async def test_big_values_round_trip_exactly(value: Any) -> None:
    async with InterpreterPool(1) as pool:
        assert await pool.run_sync(funcs.kind_and_size, value) == (
            type(value).__name__,
            len(value),
        )
        result = await pool.run_sync(_funcs_core.identity, value)
    assert type(result) is type(value)
    assert result == value


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("make", "n"),
    [
        (funcs.ints, 300_000),
        (funcs.ints_tuple, 100_000),
        (funcs.zeros, 4 * MIB),
        (funcs.zeros_bytearray, 4 * MIB),
        (funcs.text, MIB),
    ],
)
async def test_big_results_round_trip_exactly(make: Any, n: int) -> None:
    async with InterpreterPool(1) as pool:
        result = await pool.run_sync(make, n)
        # the worker serves the next call (and closes the result file)
        assert await pool.run_sync(_funcs_core.identity, 1) == 1
    expected = make(n)
    assert type(result) is type(expected)
    assert result == expected


@pytest.mark.anyio
async def test_a_big_memoryview_argument_arrives_as_a_view_and_returns_as_bytes() -> (
    None
):
    data = bytes(range(256)) * (MIB // 64)
    async with InterpreterPool(1) as pool:
        view = memoryview(data)
        assert await pool.run_sync(funcs.kind_and_size, view) == (
            "memoryview",
            len(data),
        )
        result = await pool.run_sync(_funcs_core.identity, view)
    assert type(result) is bytes
    assert result == data


@pytest.mark.anyio
async def test_a_bytearray_changed_by_the_worker_is_not_the_callers() -> None:
    buffer = bytearray(b"\x05" * MIB)
    async with InterpreterPool(1) as pool:
        assert await pool.run_sync(funcs.mutate, buffer) == ("bytearray", 6)
        assert buffer == b"\x05" * MIB
        buffer.append(1)  # the worker's view of it is released: it can be resized
        returned = await pool.run_sync(_funcs_core.identity, buffer)
    assert returned == buffer
    assert returned is not buffer


@pytest.mark.anyio
async def test_big_values_cross_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    async with InterpreterPool(1) as pool:
        args = (*range(BULKY_ITEMS), funcs.PickledHere())
        assert await pool.run_sync(funcs.kind_and_size, args) == ("tuple", len(args))
        result = await pool.run_sync(funcs.probed_ints, 100_000)
        small = await pool.run_sync(_funcs_core.identity, [funcs.PickledHere()])
    assert funcs.pickled_in[0] != loop_thread  # the bulky argument
    assert funcs.pickled_in[1:] == [loop_thread]  # a small one: as before
    assert result[0] == result[-1] == "probe"
    assert len(funcs.loaded_in) == 2
    assert loop_thread not in funcs.loaded_in
    assert type(small[0]) is funcs.PickledHere


@pytest.mark.anyio
async def test_the_loop_runs_between_slices_of_a_big_pickle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_bigvalues, "SLICE", 0.0)  # a turn at every frame
    ticks = 0
    seen: list[int] = []
    stop = anyio.Event()

    async def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await anyio.lowlevel.checkpoint()

    funcs.on_pickle = lambda: seen.append(ticks)
    chunk = tuple(range(30_000))  # more than a frame between two probes
    args = (*chunk, funcs.PickledHere(), *chunk, funcs.PickledHere())
    async with anyio.create_task_group() as tg:
        tg.start_soon(count)
        await _bigvalues.encode_call(_funcs_core.identity, args)
        stop.set()
    assert len(seen) == 2
    assert seen[1] > seen[0]  # the loop ran while the thread pickled


@pytest.mark.anyio
async def test_a_big_result_is_not_lost_to_a_cancel_during_its_unpickling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the code finished: its result is delivered, and the cancel reaches the caller at
    # its next checkpoint (a timeout that expires then does not turn it into an error)
    monkeypatch.setattr(_bigvalues, "SLICE", 0.0)  # the thread checks at every frame
    async with InterpreterPool(1) as pool:
        with anyio.CancelScope() as scope:

            def cancel() -> None:  # in the unpickling thread, at the first probe
                funcs.on_load = None
                anyio.from_thread.run_sync(scope.cancel)

            funcs.on_load = cancel
            result = await pool.run_sync(funcs.probed_ints, 200_000)
            assert len(result) == 200_002
            await anyio.lowlevel.checkpoint()  # the cancel lands here
            pytest.fail("the scope was cancelled")  # pragma: no cover
        assert scope.cancelled_caught
        assert len(funcs.loaded_in) == 2  # every piece was unpickled
        assert await pool.run_sync(_funcs_core.identity, 2) == 2
        assert pool.stats().completed == 2


@pytest.mark.anyio
async def test_cancelling_a_big_argument_stops_its_pickling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_bigvalues, "SLICE", 0.0)
    chunk = tuple(range(30_000))
    args = (*chunk, funcs.PickledHere(), *chunk, funcs.PickledHere())
    async with InterpreterPool(1) as pool:
        with anyio.CancelScope() as scope:

            def cancel() -> None:
                funcs.on_pickle = None
                anyio.from_thread.run_sync(scope.cancel)

            funcs.on_pickle = cancel
            await pool.run_sync(funcs.kind_and_size, args)
        assert scope.cancelled_caught
        assert len(funcs.pickled_in) == 1  # stopped before the second probe
        assert pool.stats().completed == 0
