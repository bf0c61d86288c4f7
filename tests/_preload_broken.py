"""A module whose import fails in every worker: it imports one that does not exist."""

import _aiointerp_tests_no_such_module  # type: ignore[import-not-found]  # noqa: F401
