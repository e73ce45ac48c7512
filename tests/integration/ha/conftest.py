"""HA tests share the session's 3-member etcd (tests/fixtures/etcd.py); each
test's servers use a fresh key root, and members a test kills come back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.etcd import EtcdCluster, shared_cluster


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    yield from shared_cluster()


@pytest.fixture
def etcd(etcd_cluster: EtcdCluster) -> Iterator[EtcdCluster]:
    """The cluster with every member up, before and after the test."""
    etcd_cluster.ensure_running()
    yield etcd_cluster
    etcd_cluster.ensure_running()
