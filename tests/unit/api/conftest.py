"""Fixtures shared by the API unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A fresh embedded store, closed after the test."""
    s = SqliteStore(str(tmp_path / "state.db"))
    await s.start()
    try:
        yield s
    finally:
        await s.close()
