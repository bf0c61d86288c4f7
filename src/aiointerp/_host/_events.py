"""The pool's operator events: records of logger ``aiointerp`` with ``record.event``.

The names and fields are documented (docs/pool-tuning.md, "Monitoring"): each
record has ``event``, ``worker_kind`` and ``worker_id`` (``None`` when no worker is
concerned), and the event's own fields.
"""

from __future__ import annotations

import errno
import logging
import resource

from .._kinds._worker import Worker

__all__ = ["event", "out_of_fds"]

logger = logging.getLogger("aiointerp")


def event(
    level: int,
    name: str,
    worker: Worker | None,
    message: str,
    *args: object,
    **fields: object,
) -> None:
    """Log the operator event *name* about *worker* (``None``: no worker)."""
    if logger.isEnabledFor(level):
        extra = {
            "event": name,
            "worker_kind": worker.kind if worker is not None else None,
            "worker_id": worker.ident if worker is not None else None,
            **fields,
        }
        logger.log(level, message, *args, extra=extra)


def out_of_fds(exc: BaseException) -> str:
    """A hint when *exc* (or what caused it) says the process is out of fds."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return ""
        if isinstance(seen, OSError) and seen.errno in (errno.EMFILE, errno.ENFILE):
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            return (
                f" (this process is out of file descriptors: its limit is {soft}; "
                "each worker holds several: raise the limit, e.g. with `ulimit -n` "
                "or resource.setrlimit(), or lower max_workers)"
            )
        seen = seen.__cause__ or seen.__context__
    return ""
