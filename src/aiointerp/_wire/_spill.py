"""A call's outcome in the worker, a big result written to a file in memory.

Stdlib only (the worker side of :mod:`aiointerp._wire._big`, whose outcome format
it writes). :func:`encode_result` is the one entry.
"""

from __future__ import annotations

import os
import pickle

from . import _big, _encoding, _protocol, _segments

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["encode_result"]


def encode_result(
    job_id: int, value: object, to_file: bool = True
) -> _encoding.Outcome:
    """The outcome of a call that returned *value*; a big one is sent in a file.

    ``to_file=False`` where the host cannot open this worker's descriptors (another
    process), or for one item of a map batch: a big result is then one pickle.
    """
    if type(value) is memoryview:
        # a view into this interpreter's memory must not outlive it: send a copy
        value = value.tobytes()
    kind = _big.classify(value, False, _big.SHARED_ITEMS_MAX, _big.SHARED_BYTES_MAX)
    if kind == _big.SMALL:
        return (job_id, _protocol.OK_SHARED, value, None, False)
    if not to_file:
        return _encode_with_fallback(job_id, value)
    if kind == _big.OTHER:  # most are small: one pickle, as before; a big one goes on
        outcome = _encode_other(job_id, value)  # to a file (one more copy)
        if isinstance(outcome, _SpillWriter):  # out-of-band buffers (numpy arrays...)
            return outcome.outcome(job_id)
        if outcome[1] == _protocol.OK_PICKLED and len(outcome[2]) >= _big.SPILL_MIN:
            spill = _spill if not _spill.busy else _SpillWriter()
            spill.write(outcome[2])
            return spill.outcome(job_id)
        return outcome
    # bulky: streamed to the file, big buffers written from where they are
    spill = _spill if not _spill.busy else _SpillWriter()
    spill.busy = True
    try:
        spill.pickler.dump(value)
    except Exception:
        spill.discard()
        # cloudpickle for classes sent by value, or a clear UNSENDABLE
        outcome = _encode_with_fallback(job_id, value)
        if outcome[1] == _protocol.OK_PICKLED and len(outcome[2]) >= _big.SPILL_MIN:
            spill.write(outcome[2])
            return spill.outcome(job_id)
        return outcome
    finally:
        spill.pickler.clear_memo()
    return spill.outcome(job_id)


def _encode_other(job_id: int, value: object) -> _encoding.Outcome | _SpillWriter:
    """One pickle, as before; or, with big out-of-band buffers, a file's writer."""
    oob = _segments.OutOfBand()
    try:
        blob = pickle.dumps(value, _encoding._PROTOCOL, buffer_callback=oob)
    except Exception:  # cloudpickle for classes sent by value, or UNSENDABLE
        return _encode_with_fallback(job_id, value)
    if not oob.buffers:  # the same pickle as without the callback
        return (job_id, _protocol.OK_PICKLED, blob, None, False)
    spill = _spill if not _spill.busy else _SpillWriter()
    spill.write(blob)
    spill.oob.buffers = oob.buffers
    return spill


def _encode_with_fallback(job_id: int, value: object) -> _encoding.Outcome:
    try:
        return (
            job_id,
            _protocol.OK_PICKLED,
            _encoding.dumps_result(value),
            None,
            False,
        )
    except Exception as error:
        why = f"{type(error).__name__}: {error}"
        return (
            job_id,
            _protocol.UNSENDABLE,
            (type(value).__qualname__, why),
            None,
            False,
        )


class _SpillWriter:
    """A result's pickle: kept in memory up to :data:`~aiointerp._wire._big.SPILL_MIN`, then in a file.

    Its big out-of-band buffers (:class:`aiointerp._wire._segments.OutOfBand`) go to the
    file after the stream, laid out as a segment's (:mod:`aiointerp._wire._segments`), and
    the outcome's ``(size, inode)`` gains their table: the host maps them. One is
    reused (with its pickler: creating one costs more than pickling a small result);
    :meth:`outcome` or :meth:`discard` make it ready for the next result.
    """

    __slots__ = ("busy", "fd", "oob", "pickler", "pieces", "size")

    def __init__(self) -> None:
        self.pieces: list[Any] = []
        self.size = 0
        self.fd = -1
        self.busy = False
        self.oob = _segments.OutOfBand()
        self.pickler = pickle.Pickler(
            self, _encoding._PROTOCOL, buffer_callback=self.oob
        )

    def write(self, data: Any) -> None:
        size = len(data) if type(data) is bytes else memoryview(data).nbytes
        self.size += size
        if self.fd >= 0:
            _write_all(self.fd, data)
            return
        self.pieces.append(data)
        if self.size >= _big.SPILL_MIN:
            self.fd = _big.result_file.create()
            for piece in self.pieces:
                _write_all(self.fd, piece)
            self.pieces = []

    def discard(self) -> None:
        if self.fd >= 0:
            _big.result_file.close()
        self.reset()

    def reset(self) -> None:
        self.pieces = []
        self.size = 0
        self.fd = -1
        self.busy = False
        self.oob.buffers = []

    def outcome(self, job_id: int) -> _encoding.Outcome:
        fd, size, pieces, buffers = self.fd, self.size, self.pieces, self.oob.buffers
        self.reset()
        if fd < 0 and not buffers:
            blob = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            if type(blob) is not bytes:
                blob = bytes(blob)
            return (job_id, _protocol.OK_PICKLED, blob, None, False)
        if fd < 0:  # a small stream, and big buffers
            fd = _big.result_file.create()
            for piece in pieces:
                _write_all(fd, piece)
        if not buffers:
            inode = os.fstat(fd).st_ino
            return (job_id, _protocol.OK_PICKLED, fd, (size, inode), False)
        table, end = _segments.layout(size, [buffer.nbytes for buffer in buffers])
        os.ftruncate(fd, end)
        for (offset, _), buffer in zip(table, buffers, strict=True):
            _segments.write_at(fd, buffer, offset)
        inode = os.fstat(fd).st_ino
        return (job_id, _protocol.OK_PICKLED, fd, (size, inode, table), False)


_spill = _SpillWriter()


def _write_all(fd: int, data: Any) -> None:
    view = data.raw() if type(data) is pickle.PickleBuffer else memoryview(data)
    view = view.cast("B")
    while view:
        view = view[os.write(fd, view) :]
