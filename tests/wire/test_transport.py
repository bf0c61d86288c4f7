"""Unit tests of the call encoding (no interpreter involved)."""

from __future__ import annotations

import enum
import functools
import operator
import pickle
import re
import sys
import threading

import _funcs_core
import pytest

from aiointerp import NotShareableError, RemoteError, RemoteTraceback
from aiointerp._wire import _big, _encoding, _exceptions, _outcomes, _protocol, _spill


class StrSubclass(str):
    pass


def stable_id(value: object) -> str:
    """A test id that is the same in every process (pytest-xdist compares them)."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


class IntSubclass(int):
    pass


class Color(enum.IntEnum):
    RED = 1


class TupleSubclass(tuple[int, ...]):
    pass


SHAREABLE = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    0.5,
    float("nan"),
    "",
    "text ☃",
    b"",
    b"bytes",
    memoryview(b"view"),
    (),
    (1, "a", b"b", None, True, 1.5),
    ((1, (2, (3, ("deep",)))),),
]

NOT_SHAREABLE = [
    pytest.param(2**63, id="int-above-64-bits"),
    pytest.param(-(2**63) - 1, id="int-below-64-bits"),
    pytest.param((1, [2]), id="tuple-with-list"),
    pytest.param((1, (2, {3})), id="tuple-with-nested-set"),
    pytest.param(((2**64,),), id="tuple-with-big-int"),
    pytest.param([1], id="list"),
    pytest.param({"a": 1}, id="dict"),
    pytest.param({1}, id="set"),
    pytest.param(frozenset(), id="frozenset"),
    pytest.param(bytearray(b"x"), id="bytearray"),
    pytest.param(1j, id="complex"),
    pytest.param(StrSubclass("s"), id="str-subclass"),
    pytest.param(IntSubclass(1), id="int-subclass"),
    pytest.param(Color.RED, id="int-enum"),
    pytest.param(TupleSubclass((1, 2)), id="tuple-subclass"),
    pytest.param(object(), id="object"),
]


@pytest.mark.parametrize("value", SHAREABLE, ids=stable_id)
def test_shareable(value: object) -> None:
    assert _encoding.is_shareable(value)


@pytest.mark.parametrize("value", NOT_SHAREABLE)
def test_not_shareable(value: object) -> None:
    assert not _encoding.is_shareable(value)


def test_encode_call_with_shareable_arguments() -> None:
    args = (1, "two", (3.0, None))
    blob, mode, payload = _encoding.encode_call(_funcs_core.identity, args)
    assert mode == _protocol.SHARED
    assert payload is args  # sent as is, not copied or pickled
    assert pickle.loads(blob) is _funcs_core.identity
    assert _big.decode_args(mode, payload) is args


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((1, [2]), id="list-inside"),
        pytest.param((2**64,), id="big-int"),
        pytest.param((_funcs_core.Record("r", [1], frozenset()),), id="dataclass"),
        pytest.param((StrSubclass("s"),), id="str-subclass"),
    ],
)
def test_encode_call_pickles_other_arguments(args: tuple[object, ...]) -> None:
    blob, mode, payload = _encoding.encode_call(operator.add, args)
    assert mode == _protocol.PICKLED
    assert isinstance(payload, bytes)
    decoded = _big.decode_args(mode, payload)
    assert decoded == args
    assert [type(a) for a in decoded] == [type(a) for a in args]
    assert pickle.loads(blob) is operator.add


def test_encode_call_partial_keeps_keywords() -> None:
    func = functools.partial(_funcs_core.with_keywords, 1, d=9)
    blob, _, _ = _encoding.encode_call(func, ())
    assert pickle.loads(blob)(5) == (1, 5, 3, 9)


def test_encode_call_unpicklable_argument_names_the_function() -> None:
    with pytest.raises(NotShareableError) as excinfo:
        _encoding.encode_call(_funcs_core.identity, (threading.Lock(),))
    message = str(excinfo.value)
    assert message.startswith("cannot send the arguments of _funcs_core.identity")
    assert "lock" in message
    assert isinstance(excinfo.value.__cause__, TypeError)


def test_encode_call_unpicklable_function() -> None:
    func = functools.partial(_funcs_core.identity, threading.Lock())
    with pytest.raises(NotShareableError, match=r"function partial\(_funcs_core"):
        _encoding.encode_call(func, ())


def test_encode_call_lambda_with_cloudpickle() -> None:
    pytest.importorskip("cloudpickle")  # installed in every test environment
    blob, _, _ = _encoding.encode_call(lambda x: x + 1, (1,))
    assert pickle.loads(blob)(1) == 2


def test_encode_call_lambda_without_cloudpickle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)
    with pytest.raises(NotShareableError) as excinfo:
        _encoding.encode_call(lambda x: x + 1, (1,))
    message = str(excinfo.value)
    assert "<lambda>" in message
    assert "define it at module level" in message
    # what works: aiointerp is not on PyPI, so `aiointerp[cloudpickle]` would fail
    assert "(pip install cloudpickle)" in message
    assert "aiointerp[" not in message


def test_results_round_trip_through_the_outcome_encoding() -> None:
    shared = _spill.encode_result(1, (1, "a"))
    assert shared[1] == _protocol.OK_SHARED
    assert _outcomes.decode_outcome(shared, _funcs_core.identity) == (1, "a")
    pickled = _spill.encode_result(2, [1, {2}])
    assert pickled[1] == _protocol.OK_PICKLED
    assert _outcomes.decode_outcome(pickled, _funcs_core.identity) == [1, {2}]
    unsendable = _spill.encode_result(3, threading.Lock())
    assert unsendable[1] == _protocol.UNSENDABLE
    with pytest.raises(NotShareableError, match=r"_funcs_core\.make_lock"):
        _outcomes.decode_outcome(unsendable, _funcs_core.make_lock)


def test_exceptions_through_the_outcome_encoding() -> None:
    outcome = _exceptions.encode_exception(1, KeyError("k"), "remote text")
    assert outcome[1] == _protocol.RAISED
    with pytest.raises(KeyError) as excinfo:
        _outcomes.decode_outcome(outcome, _funcs_core.identity)
    assert isinstance(excinfo.value.__cause__, RemoteTraceback)
    assert excinfo.value.__cause__.text == "remote text"
    # pickle would call UnpicklableError("a-b"): it is rebuilt without __init__
    error = _funcs_core.UnpicklableError("a", "b")
    outcome = _exceptions.encode_exception(1, error, "")
    assert outcome[1] == _protocol.RAISED
    with pytest.raises(_funcs_core.UnpicklableError, match=r"^a-b$"):
        _outcomes.decode_outcome(outcome, _funcs_core.identity)

    for exc, name in [
        (SystemExit(2), "SystemExit"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
    ]:
        outcome = _exceptions.encode_exception(1, exc, "text")
        assert outcome[1] == _protocol.RAISED_RAW
        with pytest.raises(RemoteError) as remote:
            _outcomes.decode_outcome(outcome, _funcs_core.identity)
        assert remote.value.type_name == name
        assert remote.value.message == str(exc)
        assert remote.value.remote_traceback == "text"


def test_describe() -> None:
    assert _encoding.describe(_funcs_core.identity) == "_funcs_core.identity"
    assert _encoding.describe(_funcs_core.Scaler(2).scale) == "_funcs_core.Scaler.scale"
    assert _encoding.describe(len) == "builtins.len"
    partial = functools.partial(_funcs_core.identity, 1)
    assert _encoding.describe(partial) == "partial(_funcs_core.identity)"


def test_an_outcome_of_unknown_status_is_a_defect() -> None:
    # no worker sends one: a forged outcome stands for a host and a worker that
    # disagree on the protocol
    with pytest.raises(AssertionError, match="unexpected outcome status 99"):
        _outcomes.decode_outcome((1, 99, None, "", False), _funcs_core.identity)


def test_main_spec_without_a_main_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # an embedded interpreter may have no __main__: workers load nothing for it
    monkeypatch.delitem(sys.modules, "__main__")
    assert _encoding.main_spec() is None
