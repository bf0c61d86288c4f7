"""The quick tier's list of slow tests (conftest.SLOW) names tests that exist.

A test file or function renamed without its entry would silently join the quick tier.
"""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, SLOW


@pytest.mark.parametrize("entry", SLOW)
def test_every_slow_entry_names_a_test(entry: str) -> None:
    path, _, function = entry.partition("::")
    source = ROOT / path
    assert source.is_file(), f"{path} does not exist"
    if function:
        defined = re.search(
            rf"^(async )?def {re.escape(function)}\(", source.read_text(), re.M
        )
        assert defined, f"{path} defines no {function}"
