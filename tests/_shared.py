"""Locations of the shared SR test sets (../shared/data beside the repository), skipped when absent."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_dir(name: str) -> Path:
    d = SHARED_DATA / name
    if not d.is_dir():
        pytest.skip(f"{d} not present (shared SR data sets live in ../shared/data)")
    return d
