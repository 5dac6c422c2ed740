"""Shared fixtures: where the real exports are, and tiny generated sources."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL = SHARED / "fixtures" / "real"


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=f"real exports not found at {REAL}")
    for item in items:
        if "real_fixtures" in item.keywords and not REAL.is_dir():
            item.add_marker(skip)


@pytest.fixture
def real() -> Path:
    return REAL
