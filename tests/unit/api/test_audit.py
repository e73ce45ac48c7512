"""Audit events: Kubernetes' Event shape, levels, no secret bodies, bounded file."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from corral.api.audit import AuditLog
from corral.api.auth import User
from corral.api.authz.attributes import request_attributes

ALICE = User("alice", "", ("system:authenticated",))


def _event(log: AuditLog, path: str, body: bytes) -> dict | None:
    attrs = request_attributes(ALICE, "POST", path, {})
    return log.event(verb=attrs.verb, uri=path, user=ALICE, source_ip="127.0.0.1", user_agent="kubectl/v1.32",
                     code=201, received_ns=time.time_ns(), attrs=attrs, body=body)


def test_levels_and_sensitive_bodies(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", "Request")
    ev = _event(log, "/api/v1/namespaces/a/configmaps", b'{"metadata":{"name":"x"}}')
    assert ev is not None
    assert ev["apiVersion"] == "audit.k8s.io/v1" and ev["stage"] == "ResponseComplete"
    assert ev["user"] == {"username": "alice", "groups": ["system:authenticated"]}
    assert ev["objectRef"] == {"resource": "configmaps", "namespace": "a", "apiVersion": "v1"}
    assert ev["verb"] == "create" and ev["responseStatus"]["code"] == 201
    assert "requestObject" not in ev and ev["level"] == "Metadata"  # configmaps are treated as sensitive
    ev = _event(log, "/apis/apps/v1/namespaces/a/deployments", b'{"metadata":{"name":"d"}}')
    assert ev is not None and ev["requestObject"] == {"metadata": {"name": "d"}} and ev["level"] == "Request"
    for path in ("/api/v1/namespaces/a/secrets", "/api/v1/namespaces/a/serviceaccounts/x/token"):
        ev = _event(log, path, b'{"data":{"k":"c2VjcmV0"}}')
        assert ev is not None and "requestObject" not in ev and ev["level"] == "Metadata"
    log.write(ev)
    log.close()
    line = orjson.loads((tmp_path / "audit.log").read_bytes().splitlines()[0])
    assert line["objectRef"]["subresource"] == "token"
    assert AuditLog(tmp_path / "none.log", "None").event(
        verb="get", uri="/", user=ALICE, source_ip="", user_agent="", code=200, received_ns=time.time_ns()) is None
    with pytest.raises(ValueError):
        AuditLog(tmp_path / "x.log", "Everything")


def test_rotation_bounds_the_file(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", "Metadata", max_bytes=2000)
    for _ in range(50):
        log.write(_event(log, "/apis/apps/v1/namespaces/a/deployments", b""))
    log.close()
    assert (tmp_path / "audit.log").stat().st_size <= 2000 + 1000
    assert (tmp_path / "audit.log.1").exists()


def test_timestamps_are_rfc3339_with_microseconds(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", "Metadata")
    when = datetime(2026, 11, 26, 19, 5, 7, 42, tzinfo=UTC)
    ns = int(when.timestamp()) * 1_000_000_000 + 42_999
    ev = log.event(verb="get", uri="/", user=ALICE, source_ip="", user_agent="", code=200, received_ns=ns)
    assert ev is not None and ev["requestReceivedTimestamp"] == "2026-11-26T19:05:07.000042Z"
    later = log.event(verb="get", uri="/", user=ALICE, source_ip="", user_agent="", code=200,
                      received_ns=ns + 3_000_000_000 + 1_000)
    assert later is not None and later["requestReceivedTimestamp"] == "2026-11-26T19:05:10.000043Z"
    stage = datetime.strptime(ev["stageTimestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((stage - datetime.now(UTC)).total_seconds()) < 60


async def test_in_a_loop_events_are_batched_flushed_on_a_timer_and_at_close(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "audit.log"
    log = AuditLog(path, "Metadata")
    for _ in range(10):
        log.write(_event(log, "/api/v1/namespaces/a/pods", b""))
    assert path.read_bytes() == b""  # one batch, not ten writes
    async with asyncio.timeout(5):
        while path.read_bytes().count(b"\n") < 10:
            await asyncio.sleep(0.02)
    for _ in range(7):
        log.write(_event(log, "/api/v1/namespaces/a/pods", b""))
    log.close()  # a clean stop: nothing pending is lost
    lines = path.read_bytes().splitlines()
    assert len(lines) == 17 and all(orjson.loads(line)["kind"] == "Event" for line in lines)


async def test_batches_still_rotate_at_the_bound(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", "Metadata", max_bytes=2000)
    for _ in range(50):
        log.write(_event(log, "/apis/apps/v1/namespaces/a/deployments", b""))
    log.close()
    assert (tmp_path / "audit.log").stat().st_size <= 2000 + 1000
    assert (tmp_path / "audit.log.1").stat().st_size <= 2000 + 1000
