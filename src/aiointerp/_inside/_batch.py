"""Batches of a map (``chunksize``): many items in one round trip, results per item.

Stdlib only: :class:`Batch` is sent to worker interpreters (pickled by reference,
with the user's function inside) and runs there; :func:`decode` and :func:`item_note`
run on the host. A batch returns ``(results_blob, failure)``, two values that cross
interpreters without a second pickle:

* ``results_blob``: the pickled list of the results of the items that succeeded,
  in order, up to the first failure;
* ``failure``: ``None``, or the outcome of the first item that raised (or whose
  result cannot be pickled), encoded as :mod:`aiointerp._wire._encoding` encodes a call's
  outcome, with the item's index in the batch as its job id, so that the host raises
  it exactly as it raises a single call's.

The items after a failing one do not run (a map stops at its first exception). An
interrupt (:class:`~aiointerp.worker.Interrupted`) is not caught: it ends the batch,
as it ends any call.
"""

from __future__ import annotations

import pickle

from .._wire import _encoding, _exceptions, _outcomes, _protocol, _rebuild, _spill
from .._wire._errors import Interrupted

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    type BatchOutcome = tuple[bytes, _encoding.Outcome | None]

__all__ = ["Batch", "decode", "item_note"]


class Batch:
    """Calls ``func(item)`` (or ``func(*item)`` with ``star``) for each item of a batch.

    Pickled once per batch with ``func``; the worker keeps the unpickled object in its
    cache of functions, keyed by the pickle, so ``func`` is loaded once per worker.
    Its ``__qualname__`` names ``func`` in the pool's messages (timeouts, logs).
    """

    def __init__(self, func: Callable[..., Any], star: bool = False) -> None:
        self.func = func
        self.star = star
        # read by _encoding.describe(): "<func> (map batch)" in messages
        self.__module__ = ""
        self.__qualname__ = f"{_encoding.describe(func)} (map batch)"

    def __call__(self, items: Sequence[Any]) -> BatchOutcome:
        func = self.func
        results: list[Any] = []
        append = results.append
        failure: _encoding.Outcome | None = None
        try:
            if self.star:
                for args in items:
                    append(func(*args))
            else:
                for item in items:
                    append(func(item))
        except Interrupted:
            raise
        except BaseException as exc:  # attributed to its item; the rest do not run
            failure = _failure(len(results), exc)
        try:
            return pickle.dumps(results, _encoding._PROTOCOL), failure
        except Exception:  # a result that cannot be pickled: find it
            return _pack_one_by_one(results, failure)


def _failure(index: int, exc: BaseException) -> _encoding.Outcome:
    tb = _encoding.user_traceback(exc.__traceback__, __file__)
    text = _encoding.format_remote(exc, tb)
    return _exceptions.encode_exception(index, exc, text)


def _pack_one_by_one(
    results: list[Any], failure: _encoding.Outcome | None
) -> BatchOutcome:
    """The slow path: results up to the first one that cannot be sent back."""
    sendable: list[Any] = []
    for index, value in enumerate(results):
        if type(value) is memoryview:  # as for a single call: a copy comes back
            value = value.tobytes()
        outcome = _spill.encode_result(index, value, to_file=False)
        if outcome[1] == _protocol.UNSENDABLE:
            failure = outcome
            break
        sendable.append(value)
    # each of them pickles, some with cloudpickle (classes sent by value)
    return _encoding.dumps_result(sendable), failure


# -- host side


def decode(
    value: BatchOutcome, func: object, first: int, items: Sequence[Any]
) -> tuple[list[Any], Exception | None]:
    """The results of a batch, and the exception of its failing item (or ``None``).

    The exception is the one the item raised, with its remote traceback as
    ``__cause__`` and a note naming the item (see :func:`item_note`).

    :param value: what :class:`Batch` returned
    :param func: the user's function (named in messages)
    :param first: the index of the batch's first item in the whole map
    :param items: the items of the batch, as sent
    """
    blob, failure = value
    try:
        results: list[Any] = pickle.loads(blob)
    except Exception as error:  # a result's class this process cannot import
        name = _encoding.describe(func)
        raise _rebuild.unloadable_result(name, error) from error
    if failure is None:
        return results, None
    index = failure[0]
    try:
        _outcomes.decode_outcome(failure, func)
    except Exception as exc:
        exc.add_note(item_note(first + index, items[index]))
        return results, exc
    raise AssertionError("a failure outcome did not raise")  # a defect of ours


def item_note(index: int, item: object) -> str:
    """The note added to an exception raised by one item of a map."""
    import reprlib

    try:
        shown = reprlib.repr(item)
    except Exception:  # a broken __repr__ must not hide the real error
        shown = f"<{type(item).__name__} object>"
    return f"aiointerp: raised by item {index} of the map: {shown}"
