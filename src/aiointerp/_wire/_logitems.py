"""The items a worker forwards to the host: log records, warnings, output, drop counts.

Stdlib only. Both halves of forwarding read this module: the worker's
(:mod:`aiointerp._inside._logs`) builds the items, the host's
(:mod:`aiointerp._kinds._forwarded`) handles them. Every item is a tuple of
shareable values (str, int, float, bool, None, tuples of them) whose first value
is its kind:

* ``(LOG, values, message, exc_text, extra)``: a log record; *values* are its
  :data:`FIELDS` in order, *extra* the ``(name, value)`` pairs of ``extra=``
* ``(WARNING, module, qualname, message, filename, lineno)``: a warning the worker
  showed; *module* and *qualname* name its category
* ``(OUTPUT, fd, text, flush)``: text written to ``sys.stdout`` (*fd* 1) or
  ``sys.stderr`` (2); *flush*: the worker's code flushed the stream
* ``(DROPPED, characters, records, budget)``: what an interpreter worker did not
  send between two calls, over its *budget* (:data:`IDLE_BUDGET`)

A :data:`Levels` table travels the other way (``LEVELS`` of the job channel): the
host's levels, so that a worker builds no record the host would drop.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Final

    type Levels = tuple[int, int, tuple[tuple[str, int], ...]]
    """(root level, logging.disable level, (name, level) of loggers with a level)"""

__all__ = ["DROPPED", "FIELDS", "IDLE_BUDGET", "LOG", "OUTPUT", "WARNING", "Levels"]

LOG: Final = 0
WARNING: Final = 1
OUTPUT: Final = 2
DROPPED: Final = 3

#: what an interpreter worker sends the host between calls before it drops the rest:
#: an estimate of the host memory its queued items take (about 3,500 lines of 70
#: characters, or 1,300 records)
IDLE_BUDGET: Final = 2 << 20

#: LogRecord attributes that travel (strings, numbers or None in the worker)
FIELDS: Final = (
    "name",
    "levelno",
    "levelname",
    "pathname",
    "filename",
    "module",
    "lineno",
    "funcName",
    "created",
    "msecs",
    "relativeCreated",
    "thread",
    "threadName",
    "process",
    "processName",
    "taskName",
    "stack_info",
)
