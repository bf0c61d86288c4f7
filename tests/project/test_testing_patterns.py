"""docs/testing.md: its conftest files share one pool across a test session.

Each pattern of the page runs, as the page shows it, in a pytest session of its own
(a child process, in a directory of its own): anyio's plugin on asyncio and on trio,
pytest-asyncio with its two ini options, and a session pool of one's own options.
The tests of that session check that every test sees the same pool, which started
one interpreter in all (a loop per test would start one per test).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _snippets import collect
from conftest import IGNORE_3130_WARNING, child_env

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "testing.md"
TESTS = 5
#: a suite on anyio's plugin alone (pytest-asyncio, installed for its own test,
#: would warn about its unset options)
ANYIO_ONLY = ("-p", "no:asyncio")

MYAPP_CPU = """\
def count_primes(n: int) -> int:
    return sum(all(k % d for d in range(2, int(k**0.5) + 1)) for k in range(2, n))
"""

#: the tests of the child session: every one runs a call; all see one pool
SHARED_DEFAULT_POOL = f"""\
import sys

import pytest

import aiointerp

from myapp.cpu import count_primes

pools = []


@pytest.mark.parametrize("n", range({TESTS}))
@pytest.mark.MARK
async def test_one_default_pool(n):
    assert await aiointerp.run_sync_in_interpreter(count_primes, 100) == 25
    pools.append(aiointerp.current_default_pool())
    assert all(pool is pools[0] for pool in pools)
    assert pools[0].stats().created == 1


@pytest.mark.MARK
async def test_the_fixture_is_that_pool(interpreter_pool):
    assert interpreter_pool is pools[0]
"""

SHARED_OWN_POOL = f"""\
import pytest

from myapp.cpu import count_primes

pools = []


def loaded(name):
    import sys

    return name in sys.modules


@pytest.mark.parametrize("n", range({TESTS}))
@pytest.mark.anyio
async def test_one_pool_of_my_options(n, interpreter_pool):
    assert await interpreter_pool.run_sync(count_primes, 100) == 25
    assert await interpreter_pool.run_sync(loaded, "json")  # preloaded
    pools.append(interpreter_pool)
    assert all(pool is pools[0] for pool in pools)
    assert interpreter_pool.stats().created == 1
"""


def snippet(name: str) -> str:
    found = [s.source for s in collect(PAGE, ROOT) if s.name == name]
    assert len(found) == 1, name
    return found[0]


def toml_block() -> str:
    found = re.findall(r"```toml\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert len(found) == 1
    return str(found[0])


def run_session(tmp_path: Path, files: dict[str, str], *options: str) -> str:
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "cpu.py").write_text(MYAPP_CPU)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "-W", "error", "-W", IGNORE_3130_WARNING, *options],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def with_backend(conftest: str, backend: str) -> str:
    old = 'return "asyncio"  # or "trio"'
    assert old in conftest
    return conftest.replace(old, f'return "{backend}"')


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_plugin_shares_one_pool(backend: str, tmp_path: Path) -> None:
    output = run_session(
        tmp_path,
        {
            "conftest.py": with_backend(snippet("anyio-conftest"), backend),
            "test_shared.py": SHARED_DEFAULT_POOL.replace("MARK", "anyio"),
            "test_docs_example.py": snippet("anyio-test"),
        },
        *ANYIO_ONLY,
    )
    assert f"{TESTS + 2} passed" in output, output


def test_pytest_asyncio_shares_one_pool(tmp_path: Path) -> None:
    pytest.importorskip("pytest_asyncio")
    example = snippet("anyio-test").replace("pytest.mark.anyio", "pytest.mark.asyncio")
    output = run_session(
        tmp_path,
        {
            "pyproject.toml": toml_block(),
            "conftest.py": snippet("pytest-asyncio-conftest"),
            "test_shared.py": SHARED_DEFAULT_POOL.replace("MARK", "asyncio"),
            "test_docs_example.py": example,
        },
    )
    assert f"{TESTS + 2} passed" in output, output


def test_a_session_pool_of_ones_own_options(tmp_path: Path) -> None:
    output = run_session(
        tmp_path,
        {
            "conftest.py": snippet("own-pool-conftest"),
            "test_shared.py": textwrap.dedent(SHARED_OWN_POOL),
        },
        *ANYIO_ONLY,
    )
    assert f"{TESTS} passed" in output, output
