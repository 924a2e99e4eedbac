"""Suite-wide fixtures. The database ones live in ``tests/database.py``."""

import sys
from pathlib import Path

# `tests` is a namespace package: make the project root importable however pytest is
# started (`python -m pytest` adds it, the bare `pytest` script does not).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = ["tests.database", "tests.service", "tests.browser"]
