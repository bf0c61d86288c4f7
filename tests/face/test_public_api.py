"""The public surface: ``__all__``, ``__module__``, and what importing costs."""

from __future__ import annotations
import __future__

import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import aiointerp

SOURCE = Path(aiointerp.__file__).resolve().parent.parent


def _public_attributes(module: types.ModuleType) -> set[str]:
    """The module's public attributes (lazy names once loaded), modules excluded."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        # `from __future__ import annotations` binds a name no module can avoid
        and not isinstance(value, __future__._Feature)
    }


@pytest.mark.parametrize("name", aiointerp.__all__)
def test_every_name_in_all_resolves(name: str) -> None:
    value = getattr(aiointerp, name)
    assert value is not None
    assert name in dir(aiointerp)


def test_all_has_no_duplicates_and_is_sorted() -> None:
    assert len(set(aiointerp.__all__)) == len(aiointerp.__all__)
    assert sorted(aiointerp.__all__) == aiointerp.__all__


def test_no_public_name_missing_from_all() -> None:
    # the other direction, every name of __all__ exists, is checked above
    assert _public_attributes(aiointerp) - set(aiointerp.__all__) == set()


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        aiointerp.no_such_name  # noqa: B018
    assert not hasattr(aiointerp, "no_such_name")


@pytest.mark.parametrize("name", aiointerp.__all__)
def test_public_objects_report_module_aiointerp(name: str) -> None:
    value = getattr(aiointerp, name)
    assert inspect.isclass(value) or callable(value)
    assert value.__module__ == "aiointerp"


def test_interrupted_is_the_worker_one() -> None:
    import aiointerp.worker

    assert aiointerp.Interrupted is aiointerp.worker.Interrupted
    assert issubclass(aiointerp.Interrupted, BaseException)
    assert not issubclass(aiointerp.Interrupted, Exception)


def test_error_hierarchy() -> None:
    assert issubclass(aiointerp.BrokenWorkerError, aiointerp.AiointerpError)
    assert issubclass(aiointerp.PoolClosedError, aiointerp.AiointerpError)
    assert issubclass(aiointerp.PoolClosedError, RuntimeError)
    assert issubclass(aiointerp.NotShareableError, aiointerp.AiointerpError)
    assert issubclass(aiointerp.NotShareableError, TypeError)
    assert issubclass(aiointerp.RemoteError, aiointerp.AiointerpError)
    assert issubclass(aiointerp.AiointerpError, Exception)
    assert not issubclass(aiointerp.RemoteTraceback, aiointerp.AiointerpError)


def test_pool_stats_fields() -> None:
    fields = list(inspect.signature(aiointerp.PoolStats).parameters)
    assert fields == [
        "max_workers",
        "workers",
        "idle",
        "busy",
        "starting",
        "quarantined",
        "retiring",
        "waiting",
        "created",
        "retired",
        "completed",
        "failed",
        "cancelled",
        "timed_out",
        "abandoned",
        "shed",
        "interpreters",
        "processes",
    ]


def test_signatures() -> None:
    positional_only = inspect.Parameter.POSITIONAL_ONLY
    keyword_only = inspect.Parameter.KEYWORD_ONLY
    run = inspect.signature(aiointerp.run_sync_in_interpreter).parameters
    assert run["func"].kind is positional_only
    assert (run["timeout"].kind, run["timeout"].default) == (keyword_only, None)
    assert (run["pool"].kind, run["pool"].default) == (keyword_only, None)
    method = inspect.signature(aiointerp.InterpreterPool.run_sync).parameters
    assert method["func"].kind is positional_only
    assert (method["timeout"].kind, method["timeout"].default) == (keyword_only, None)
    init = inspect.signature(aiointerp.InterpreterPool).parameters
    assert list(init) == [
        "max_workers",
        "min_idle",
        "idle_timeout",
        "max_tasks_per_worker",
        "initializer",
        "initargs",
        "cancel_grace",
        "forward_logging",
        "max_waiting",
        "kind",
        "forward_output",
        "preload",
    ]
    assert init["max_workers"].default is None
    assert all(p.kind is keyword_only for p in list(init.values())[1:])
    close = inspect.signature(aiointerp.InterpreterPool.aclose).parameters
    assert (close["timeout"].kind, close["timeout"].default) == (keyword_only, 5.0)
    executor = inspect.signature(aiointerp.InterpreterExecutor).parameters
    assert list(executor) == [
        "max_workers",
        "initializer",
        "initargs",
        "cancel_grace",
        "min_idle",
        "idle_timeout",
        "max_tasks_per_worker",
        "interrupt_on_cancel",
        "forward_logging",
        "kind",
        "forward_output",
    ]
    assert all(p.kind is keyword_only for p in list(executor.values())[1:])
    assert executor["forward_output"].default is init["forward_output"].default is True
    # the default kind is the pool's
    assert executor["kind"].default == init["kind"].default == "interpreter"


@pytest.mark.parametrize(
    "module", ["aiointerp", "aiointerp.worker", "aiointerp._inside._loop"]
)
def test_import_does_not_load_anyio_or_trio(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted({'anyio', 'trio', 'sniffio'} & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SOURCE))
    process = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr


def test_worker_api_outside_a_worker() -> None:
    worker = importlib.import_module("aiointerp.worker")
    worker.checkpoint()  # does nothing
    assert worker.cancelled() is False
    assert worker.deadline() is None


def test_older_pythons_are_refused_on_import(monkeypatch: pytest.MonkeyPatch) -> None:
    # requires-python keeps pip from installing it there; a copy on sys.path is not
    path = Path(aiointerp.__file__)
    spec = importlib.util.spec_from_file_location("aiointerp_on_3_12", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "version_info", (3, 12, 9, "final", 0))
    with pytest.raises(ImportError, match=r"needs CPython 3\.13 or newer"):
        spec.loader.exec_module(module)
