"""A batch's outcome, decoded in the caller (no worker involved: forged outcomes)."""

from __future__ import annotations

import pickle

import _funcs_core
import pytest

from aiointerp._inside import _batch
from aiointerp._wire import _exceptions, _protocol


def test_the_failure_of_a_batch_is_raised_with_its_item() -> None:
    failure = _exceptions.encode_exception(1, KeyError("k"), "text")
    results, exc = _batch.decode(
        (pickle.dumps(["a"]), failure), _funcs_core.identity, 10, ["x", "y"]
    )
    assert results == ["a"]
    assert type(exc) is KeyError
    assert exc.__notes__ == [_batch.item_note(11, "y")]


def test_a_failure_that_does_not_fail_is_a_defect() -> None:
    # no worker sends one: a forged outcome stands for a worker that disagrees
    failure = (0, _protocol.OK_SHARED, 1, "", False)
    with pytest.raises(AssertionError, match="a failure outcome did not raise"):
        _batch.decode((pickle.dumps([]), failure), _funcs_core.identity, 0, ["x"])
