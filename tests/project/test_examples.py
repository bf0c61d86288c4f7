"""Every script in examples/ runs as a test (in a subprocess, as a user runs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PRIMES = [
    "primes below 20000: 2262",
    "primes below 30000: 3245",
    "primes below 40000: 4203",
    "primes below 50000: 5133",
]

EXPECTED = {
    "asyncio_example.py": [*PRIMES, "the long call was interrupted after 0.5 s"],
    "trio_example.py": [*PRIMES, "the long call was interrupted after 0.5 s"],
    "executor_example.py": [
        *PRIMES,
        "still running; cancel() -> False",
        "the long call was interrupted",
    ],
    "map_progress.py": ["] 24/24\n", "45431 primes counted in 24 ranges"],
    "dask_cluster.py": [
        *PRIMES,
        "the endless task was interrupted on its worker",
        "DaskPool.run_sync: 1229",
    ],
}


#: Scripts tested elsewhere: web_app.py and fastapi_app.py are served by uvicorn in
#: test_web.py and test_fastapi_app.py, demo.py runs in test_examples_demo.py; names
#: starting with "_" are helper modules.
ELSEWHERE = {"web_app.py", "fastapi_app.py", "demo.py"}


def test_every_example_is_tested() -> None:
    scripts = {
        path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("_")
    }
    assert scripts - ELSEWHERE == set(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    for fragment in EXPECTED[script]:
        assert fragment in done.stdout, done.stdout
