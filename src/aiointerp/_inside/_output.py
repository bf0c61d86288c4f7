"""The worker's ``sys.stdout`` and ``sys.stderr`` with ``forward_output`` (stdlib only).

Their text goes to :meth:`aiointerp._inside._logs.Forwarding.write`, which sends it
line-buffered: a write that ends a line, or a big one, is sent; a partial line waits
for the end of its line, a ``flush()``, a write to the other stream or the end of the
call, so a ``print()`` costs one item, not one per piece.
"""

from __future__ import annotations

import io

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Sink(Protocol):
        """Where the text goes: :class:`aiointerp._inside._logs.Forwarding`."""

        def write(self, fd: int, text: str) -> None: ...
        def send_output(self, flush: bool) -> None: ...


__all__ = ["Output"]


class Output(io.TextIOBase):
    """The worker's ``sys.stdout`` or ``sys.stderr`` with ``forward_output``.

    Text only (as :class:`io.TextIOWrapper`: ``write(bytes)`` raises
    :class:`TypeError`); there is no ``buffer``. :meth:`fileno` is the replaced
    stream's, so code that hands the descriptor to a child process or to
    :mod:`faulthandler` still works (what is written there is not forwarded).
    """

    def __init__(self, forwarding: Sink, fd: int, replaced: Any) -> None:
        super().__init__()
        self._forwarding = forwarding
        self._fd = fd
        self._replaced = replaced
        #: the loop ended: what is still written here goes to the replaced stream
        self.detached = False

    @property
    def name(self) -> str:
        return "<stdout>" if self._fd == 1 else "<stderr>"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False  # the host's stream, wherever it goes now, is not ours to ask

    def fileno(self) -> int:
        if self._replaced is None:
            raise io.UnsupportedOperation("fileno")
        return int(self._replaced.fileno())

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if self.detached:  # a reference kept past the loop's end (a log handler's)
            if self._replaced is not None:
                self._replaced.write(text)
            return len(text)
        if text:
            self._forwarding.write(self._fd, text)
        return len(text)

    def flush(self) -> None:
        # close() flushes, and so does __del__: not once the loop ended
        if not self.closed and not self.detached:
            self._forwarding.send_output(True)
        elif self.detached and self._replaced is not None:
            self._replaced.flush()
