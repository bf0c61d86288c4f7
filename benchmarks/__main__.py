"""``python -m benchmarks [--quick | --smoke] [--out DIR]``: see :mod:`benchmarks._cli`.

Nothing happens at import: process pools (anyio.to_process) re-run the main module
in their workers by path, as ``__mp_main__``.
"""

from __future__ import annotations

if __name__ == "__main__":
    import sys

    from benchmarks._cli import main

    sys.exit(main())
