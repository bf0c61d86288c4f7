"""Shared fixtures: every async test runs on asyncio (debug mode) and trio, and no test
may leak an interpreter, a worker thread, a file descriptor or a child process."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aiointerp
from aiointerp._wire import _interp

ROOT = Path(__file__).resolve().parent.parent
#: where aiointerp is imported from, also when it is not installed in this Python
SOURCE = Path(aiointerp.__file__).resolve().parent.parent


#: the pool's warning on CPython 3.13.0 (tests/host/test_profilers.py checks it)
IGNORE_3130_WARNING = "ignore:CPython 3.13.0 has a defect:RuntimeWarning"


def child_env() -> dict[str, str]:
    """The environment of a child Python that imports aiointerp, tests/ and benchmarks.

    Its stderr stays free of the one warning the pool gives on CPython 3.13.0.
    """
    env = dict(os.environ)
    paths = [str(SOURCE), str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    warnings = [IGNORE_3130_WARNING, env.get("PYTHONWARNINGS", "")]
    env["PYTHONWARNINGS"] = ",".join(filter(None, warnings))
    return env


_BACKENDS = [
    pytest.param(("asyncio", {"debug": True}), id="asyncio"),
    pytest.param(("trio", {}), id="trio"),
]
try:  # uvloop too, where it is installed (requirements-dev.txt installs it)
    import uvloop  # noqa: F401
except ImportError:  # pragma: no cover
    HAVE_UVLOOP = False
else:
    HAVE_UVLOOP = True
    _BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))


@pytest.fixture(scope="session", autouse=True)
def _uvloop_globals() -> None:
    """libuv opens process-wide fds on first use: not a leak of the first test."""
    if HAVE_UVLOOP:
        import anyio

        anyio.run(anyio.sleep, 0, backend_options={"use_uvloop": True})


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


def _aiointerp_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("aiointerp")]


def _children() -> set[int]:
    """Live child processes of this process (zombies too: nobody reaped them)."""
    me = str(os.getpid())
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        if stat.rpartition(")")[2].split()[1] == me:
            children.add(int(entry))
    return children


def _fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _shm_names() -> set[str]:
    """aiointerp's names in /dev/shm: it makes none (its segments are memfds)."""
    try:
        return {name for name in os.listdir("/dev/shm") if "aiointerp" in name}
    except OSError:  # pragma: no cover - no /dev/shm
        return set()


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves interpreters, worker threads, fds or processes behind.

    The fds are pipes, and aiointerp's files in memory (result files, segments);
    nothing of aiointerp's may appear in /dev/shm either.
    """
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    interps = _interp.live_ids()
    fds = _fds()
    children = _children()
    shm = _shm_names()
    yield
    deadline = time.monotonic() + 10  # a thread may still be on its way out
    while True:
        gc.collect()
        leaked_interps = _interp.live_ids() - interps
        leaked_threads = _aiointerp_threads()
        leaked_fds = {fd for fd in _fds() - fds if _is_ours(fd)}
        leaked_children = _children() - children
        leaked_shm = _shm_names() - shm
        if not (
            leaked_interps
            or leaked_threads
            or leaked_fds
            or leaked_children
            or leaked_shm
        ):
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"leaked interpreters {sorted(leaked_interps)}, "
                f"threads {leaked_threads}, pipe or memfd fds {sorted(leaked_fds)}, "
                f"child processes {sorted(leaked_children)}, "
                f"/dev/shm entries {sorted(leaked_shm)}"
            )
        time.sleep(0.01)  # polling a hang guard, not synchronisation


def _is_ours(fd: int) -> bool:
    """A pipe, or one of aiointerp's files in memory (``/memfd:aiointerp-...``)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return target.startswith("pipe:") or target.startswith("/memfd:aiointerp-")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_leaks: the test manages interpreters it leaves on purpose"
    )
    config.addinivalue_line(
        "markers",
        "stress: long randomised runs (SIGINT storms); they run by default, in CI "
        "too; deselect them with -m 'not stress'",
    )
    config.addinivalue_line(
        "markers",
        "slow: among the slowest tests outside the stress tier (conftest.SLOW); they "
        "run by default, in CI too; the quick tier deselects them: "
        "-m 'not stress and not slow'",
    )


#: the slowest tests outside the stress tier, by ``--durations`` of the whole suite
#: (test files, or test functions with every parametrization): marked ``slow`` here, in
#: one place, so that the quick tier (``-m "not stress and not slow"``, scripts/run.sh)
#: takes under 5 minutes in two test processes on a 2-CPU machine
SLOW = (
    # whole files: child Pythons, servers, clusters, kernels
    "tests/project/test_benchmarks_quick.py",
    "tests/project/test_docs_snippets.py",
    "tests/project/test_examples.py",
    "tests/project/test_examples_demo.py",
    "tests/integrations/test_dask.py",
    "tests/integrations/test_starlette.py",
    "tests/integrations/test_fastapi_app.py",
    "tests/kinds/test_real_packages.py",
    "tests/inside/test_interactive.py",
    # single tests of 2 s or more on each event loop
    "tests/kinds/test_faults.py::test_a_thread_left_running_does_not_hold_the_slot",
    "tests/host/test_lifecycle.py::test_initializer_failure_keeps_its_exception",
    "tests/host/test_lifecycle.py::test_initializer_failure_fails_waiting_callers",
    "tests/host/test_lifecycle.py::test_initializer_failure_backs_off_then_recovers",
    "tests/inside/test_cancellation.py::test_cancel_storm",
    "tests/inside/test_cancellation.py::test_no_stale_interrupt_after_cancels_and_timeouts",
    "tests/inside/test_cancellation.py::test_uninterruptible_sleep_is_abandoned_and_quarantined",
    "tests/host/test_pool_bookkeeping.py::test_start_failures_back_off_exponentially_then_reset",
    "tests/inside/test_main_script.py::test_main_script_that_imports_fastapi_without_cloudpickle",
    "tests/inside/test_main_script.py::test_main_script_that_imports_fastapi_goes_by_value",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = item.nodeid.partition("[")[0]  # every parametrization
        if function in SLOW or function.partition("::")[0] in SLOW:
            item.add_marker(pytest.mark.slow)
