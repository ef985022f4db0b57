"""Loaded by the pytest configuration (`-p tests.test_mode` in pyproject.toml) before
pytest-django imports the settings: the suite runs in test mode because it says so
(tam_portal/settings.py, TESTING), not because pytest happens to be imported."""

import os

os.environ.setdefault("TAM_TEST_MODE", "1")
