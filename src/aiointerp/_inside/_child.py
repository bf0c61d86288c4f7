"""The entry point of a process worker: ``python -c`` runs :func:`main` in the child.

Stdlib only, and cheap to import (it runs before every process worker's first call).
The host started this process with :func:`subprocess.Popen` and passed it six fds
(see :class:`aiointerp._kinds._pipelink.PipeLink`); the first message on the job pipe is
the pool's :class:`~aiointerp._wire._protocol.WorkerConfig`. The child then runs the
worker loop of every kind, :func:`aiointerp._inside._loop.serve`.

* **SIGINT is ignored**: a terminal's Ctrl-C reaches the whole foreground process
  group, this child included; the host interrupts the child's code through the
  cancel pipe instead (its cleanup runs), as for interpreters.
* **No orphans**: when the host dies, however it dies, the job pipe and the *alive*
  pipe reach end of file (only the host holds their write ends). An idle loop ends
  at once; a loop busy in user code is interrupted, and the process exits after
  :data:`ORPHAN_GRACE` seconds if the code does not stop. ``PR_SET_PDEATHSIG`` is
  not used: it fires when the *thread* that started the child ends, and workers are
  started from anyio's worker threads.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

#: seconds the code of a child whose host died gets to stop before the child exits
ORPHAN_GRACE = 1.0


def _watch_host(alive_r: int, cancel: object) -> None:
    """Daemon thread: the host is gone (EOF): interrupt the call, then exit."""
    while os.read(alive_r, 1):  # nothing is ever written: only EOF ends it
        pass
    from . import _job

    state = _job._state
    if state is not None and state.job_id:
        try:
            cancel(state.job_id)  # type: ignore[operator]
        except OSError:
            pass
    threading.Event().wait(ORPHAN_GRACE)
    os._exit(1)  # still running: the loop did not end on its own


def main(argv: list[str]) -> None:
    """Serve the host that started this process (argv: the six fds)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    job_r, done_w, cancel_r, cancel_w, alive_r, sock = (int(arg) for arg in argv)
    from .._wire import _protocol
    from . import _ends

    channel = _ends.PipeChannel(job_r, done_w, cancel_r, cancel_w, sock)
    kind, payload = channel.receive()
    if kind != _protocol.CONFIG:  # the host is gone before it sent the config
        return
    config = _protocol.WorkerConfig._make(payload)
    sys.path[:] = config.sys_path
    threading.Thread(
        target=_watch_host,
        args=(alive_r, channel.cancel),
        name="aiointerp-orphan-watch",
        daemon=True,
    ).start()
    from ._loop import serve

    why = None
    try:
        serve(config, channel)
    except BrokenPipeError:  # the host is gone: nobody to report to
        return
    except BaseException as exc:  # a defect of ours: the host says what ended it
        why = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,)
        raise  # and its traceback goes to stderr
    finally:
        try:
            channel.send(_protocol.EXITED, why)
        except OSError:  # the host is gone
            pass
