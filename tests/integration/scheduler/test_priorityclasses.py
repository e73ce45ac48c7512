"""PriorityClass through the real API server: validation, the built-in
classes, and pods' priority resolved at admission."""

from __future__ import annotations

import pytest

from corral.client.errors import ForbiddenError, InvalidError
from corral.client.resources import PODS, Resource
from corral.testing import running_server

pytestmark = pytest.mark.timeout(60)
PCS = Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False)


def pc(name: str, value: int, **extra) -> dict:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, **extra}


def pod(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}


async def test_priority_resolved_at_admission(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as c:
        created = await c.create(PCS, pc("batch", 100, preemptionPolicy="Never", description="batch"))
        assert created["preemptionPolicy"] == "Never"
        p = await c.create(PODS, pod("b", priorityClassName="batch"))
        assert p["spec"]["priority"] == 100 and p["spec"]["preemptionPolicy"] == "Never"
        crit = await c.create(PODS, pod("crit", priorityClassName="system-cluster-critical"))
        assert crit["spec"]["priority"] == 2_000_000_000
        plain = await c.create(PODS, pod("plain"))
        assert plain["spec"]["priority"] == 0 and plain["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
        with pytest.raises(ForbiddenError, match="no PriorityClass with name nope was found"):
            await c.create(PODS, pod("x", priorityClassName="nope"))
        with pytest.raises(ForbiddenError, match=r"integer value of priority \(5\) must not be provided"):
            await c.create(PODS, pod("y", priorityClassName="batch", priority=5))


async def test_global_default_and_validation(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as c:
        await c.create(PCS, pc("normal", 1000, globalDefault=True))
        with pytest.raises(ForbiddenError, match="already marked as default"):
            await c.create(PCS, pc("other", 5, globalDefault=True))
        p = await c.create(PODS, pod("d"))
        assert p["spec"]["priorityClassName"] == "normal" and p["spec"]["priority"] == 1000
        with pytest.raises(InvalidError) as err:
            await c.create(PCS, pc("huge", 2_000_000_000))
        assert "maximum allowed value of a user defined priority is 1000000000" in err.value.message
        with pytest.raises(InvalidError, match="system-"):
            await c.create(PCS, pc("system-mine", 10))
        with pytest.raises(InvalidError, match="preemptionPolicy"):
            await c.create(PCS, pc("odd", 10, preemptionPolicy="Sometimes"))
        with pytest.raises(InvalidError, match="may not be changed"):
            await c.patch(PCS, "normal", {"value": 7})
