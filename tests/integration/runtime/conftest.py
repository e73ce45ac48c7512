"""A real Docker engine (started if none answers) for the runtime tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.dockerd import Dockerd, shared_dockerd


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    yield from shared_dockerd()
