"""Bad Service and EndpointSlice specs are refused with 422 naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.client.errors import InvalidError
from corral.client.resources import ENDPOINTSLICES, SERVICES
from corral.testing import running_server


def svc(spec: dict[str, Any], name: str = "bad") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


CASES = [
    ({"ports": [{"port": 70000}]}, "spec.ports[0].port"),
    ({"ports": [{"port": 0}]}, "spec.ports[0].port"),
    ({"ports": [{"port": 80, "targetPort": 99999}]}, "spec.ports[0].targetPort"),
    ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, "spec.ports[1].name"),
    ({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}, "spec.ports[1]"),
    ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name"),
    ({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}, "spec.clusterIP"),
    ({"clusterIP": "not-an-ip", "ports": [{"port": 80}]}, "spec.clusterIPs[0]"),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}, "spec.ports[0].nodePort"),
    ({"ports": [{"port": 80, "nodePort": 30001}]}, "spec.ports[0].nodePort"),
    ({"ports": [{"port": 80, "protocol": "ICMP"}]}, "spec.ports[0].protocol"),
    ({"sessionAffinity": "Sticky", "ports": [{"port": 80}]}, "spec.sessionAffinity"),
    ({"type": "Magic", "ports": [{"port": 80}]}, "spec.type"),
]


@pytest.mark.parametrize(("spec", "field"), CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
async def test_bad_service_is_422(tmp_path: Path, spec: dict[str, Any], field: str) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        with pytest.raises(InvalidError) as info:
            await client.create(SERVICES, svc(spec))
        assert info.value.status == 422
        assert field in [c.get("field") for c in info.value.causes], info.value.causes
        # nothing half-written
        listed = await client.list(SERVICES, "default")
        assert [s["metadata"]["name"] for s in listed["items"] if s["metadata"]["name"] == "bad"] == []


async def test_taken_cluster_ip_and_bad_slices(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        first = await client.create(SERVICES, svc({"ports": [{"port": 80}]}, "first"))
        with pytest.raises(InvalidError, match="already allocated"):
            await client.create(SERVICES, svc({"clusterIP": first["spec"]["clusterIP"],
                                               "ports": [{"port": 80}]}, "second"))
        base = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "s", "namespace": "default"}}
        for body, field in (
            ({"addressType": "IPv5", "endpoints": []}, "addressType"),
            ({"addressType": "IPv4", "endpoints": [{"addresses": ["::1"]}]}, "endpoints[0].addresses[0]"),
            ({"addressType": "IPv4", "endpoints": [{"addresses": []}]}, "endpoints[0].addresses"),
            ({"addressType": "IPv4", "endpoints": [], "ports": [{"port": 0}]}, "ports[0].port"),
            ({"addressType": "IPv4", "endpoints": [], "ports": [{"name": "a"}, {"name": "a"}]}, "ports[1].name"),
        ):
            with pytest.raises(InvalidError) as info:
                await client.create(ENDPOINTSLICES, {**base, **body})
            assert field in [c.get("field") for c in info.value.causes], (body, info.value.causes)
        made = await client.create(ENDPOINTSLICES, {**base, "addressType": "IPv4", "endpoints": [
            {"addresses": ["127.0.0.1"]}], "ports": [{"name": "http", "port": 80}]})
        made["addressType"] = "IPv6"
        with pytest.raises(InvalidError, match="immutable"):
            await client.replace(ENDPOINTSLICES, made)
