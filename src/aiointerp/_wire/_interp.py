"""The one module that knows CPython 3.13's private API from the 3.14+ public one.

Stdlib only: it is imported inside worker interpreters too (for the queues).

* 3.13: ``_interpreters`` and ``_interpqueues`` (private, no stability promise).
* 3.14+: ``concurrent.interpreters`` (PEP 734).

Everything above this module sees the same small surface: :func:`create` returns an
:class:`Interp`, queues are plain integer ids opened with :func:`open_queue`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

__all__ = [
    "ExecFailed",
    "Interp",
    "create",
    "create_queue",
    "current_id",
    "destroy_queue",
    "live_ids",
    "open_queue",
    "queue_size",
]

_REQUIREMENT = (
    "aiointerp needs CPython 3.13 or newer built with subinterpreter support "
    "(PEP 684/734: the _interpreters module); this is {impl} {version}"
)


def _unsupported() -> ImportError:
    return ImportError(
        _REQUIREMENT.format(
            impl=sys.implementation.name, version=sys.version.split()[0]
        )
    )


if sys.version_info < (3, 13):  # a checkout run by an older Python (pip refuses)
    raise _unsupported()


class ExecFailed(Exception):
    """Code run with :meth:`Interp.exec` raised; the message is the remote traceback."""


#: How a worker interpreter starts: the host's sys.path, then the worker loop, with
#: the values :meth:`Interp.run_worker` put in the interpreter's ``__main__``.
_WORKER_BOOTSTRAP: Final = (
    "import sys\n"
    "sys.path[:] = _aiointerp_sys_path\n"
    "from aiointerp._inside._loop import serve_interpreter\n"
    "serve_interpreter(_aiointerp_config, _aiointerp_ends)\n"
)


if sys.version_info >= (3, 14):
    try:
        import concurrent.interpreters as _ci
    except ImportError as exc:  # a build without subinterpreters
        raise _unsupported() from exc

    class Interp:
        """One isolated interpreter (own GIL)."""

        __slots__ = ("_interp", "id")

        def __init__(self) -> None:
            self._interp = _ci.create()
            self.id: int = self._interp.id

        def exec(self, code: str) -> None:
            try:
                self._interp.exec(code)
            except _ci.ExecutionFailed as exc:
                raise ExecFailed(str(exc)) from None

        def run_worker(self, config: tuple[Any, ...], ends: tuple[Any, ...]) -> None:
            """Run the worker loop in this interpreter until it quits (blocking)."""
            self._interp.prepare_main(
                _aiointerp_sys_path=config[0],
                _aiointerp_config=config,
                _aiointerp_ends=ends,
            )
            self.exec(_WORKER_BOOTSTRAP)

        def close(self) -> None:
            self._interp.close()

    _queues: dict[int, Any] = {}

    def create_queue() -> int:
        queue = _ci.create_queue()
        _queues[queue.id] = queue  # the host's reference keeps the queue alive
        return int(queue.id)

    def destroy_queue(qid: int) -> None:
        _queues.pop(qid, None)

    def open_queue(qid: int) -> tuple[Callable[[Any], None], Callable[[], Any]]:
        queue = _queues.get(qid) or _ci.Queue(qid)
        return queue.put_nowait, queue.get_nowait

    def queue_size(qid: int) -> Callable[[], int]:
        queue = _queues.get(qid) or _ci.Queue(qid)
        return queue.qsize  # type: ignore[no-any-return]

    def current_id() -> int:
        return int(_ci.get_current().id)

    def live_ids() -> set[int]:
        return {int(interp.id) for interp in _ci.list_all()}

else:
    try:
        import _interpqueues
        import _interpreters
    except ImportError as exc:  # a build without subinterpreters
        raise _unsupported() from exc

    _SHARED_ONLY: Final = 0  # _interpqueues item format: cross-interpreter data only
    _UNBOUND_REMOVE: Final = 2  # drop items whose sending interpreter is gone

    class Interp:  # type: ignore[no-redef,unused-ignore]
        """One isolated interpreter (own GIL)."""

        __slots__ = ("id",)

        def __init__(self) -> None:
            self.id: int = _interpreters.create("isolated")

        def exec(self, code: str) -> None:
            excinfo = _interpreters.exec(self.id, code)
            if excinfo is not None:
                raise ExecFailed(
                    getattr(excinfo, "errdisplay", None) or excinfo.formatted
                )

        def run_worker(self, config: tuple[Any, ...], ends: tuple[Any, ...]) -> None:
            """Run the worker loop in this interpreter until it quits (blocking)."""
            _interpreters.set___main___attrs(
                self.id,
                {
                    "_aiointerp_sys_path": config[0],
                    "_aiointerp_config": config,
                    "_aiointerp_ends": ends,
                },
            )
            self.exec(_WORKER_BOOTSTRAP)

        def close(self) -> None:
            _interpreters.destroy(self.id)

    def create_queue() -> int:
        return int(_interpqueues.create(0, _SHARED_ONLY, _UNBOUND_REMOVE))

    def destroy_queue(qid: int) -> None:
        _interpqueues.destroy(qid)

    def open_queue(qid: int) -> tuple[Callable[[Any], None], Callable[[], Any]]:
        put = _interpqueues.put
        get = _interpqueues.get

        def put_nowait(obj: Any) -> None:
            put(qid, obj, _SHARED_ONLY, _UNBOUND_REMOVE)

        def get_nowait() -> Any:
            return get(qid)[0]

        return put_nowait, get_nowait

    def queue_size(qid: int) -> Callable[[], int]:
        get_count = _interpqueues.get_count
        return lambda: int(get_count(qid))

    def current_id() -> int:
        return int(_interpreters.get_current()[0])

    def live_ids() -> set[int]:
        return {int(entry[0]) for entry in _interpreters.list_all()}


def create() -> Interp:
    """Create an isolated interpreter; blocking (~10 ms), never call it on the event loop."""
    return Interp()
