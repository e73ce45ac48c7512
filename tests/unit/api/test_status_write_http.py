"""Pod status writes over HTTP, as a hollow node PATCHes and the agent PUTs
them: the managedFields they record, what is stored, and the errors bad
status input gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.client.errors import BadRequestError, NotFoundError
from corral.client.resources import PODS
from corral.testing import running_server

T1 = "2026-11-26T00:00:01Z"


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "i:1"}]}}


def running(ready: str = "True") -> dict[str, Any]:
    return {"phase": "Running", "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": ready, "lastProbeTime": None, "lastTransitionTime": T1}]}


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e.get("subresource", "")): e for e in obj["metadata"]["managedFields"]}


async def test_status_writes_record_their_own_entries_and_store_only_status(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, \
            server.client(user_agent="kube-controller-manager/v1") as kcm, \
            server.client(user_agent="corral-hollow-node/n1") as hollow, \
            server.client(user_agent="corral-agent") as agent:
        created = await kcm.create(PODS, pod("p"), "default")
        patch = {"metadata": {"labels": {"app": "changed"}}, "status": running()}
        patched = await hollow.patch(PODS, "p", patch, "default", subresource="status")
        assert patched["metadata"]["labels"] == {"app": "web"}  # a status write stores only status
        assert patched["status"]["phase"] == "Running"
        assert "lastProbeTime" not in patched["status"]["conditions"][0]  # nulls are not stored
        got = entries(patched)
        assert set(got) == {("kube-controller-manager", ""), ("corral-hollow-node", "status")}
        assert got[("kube-controller-manager", "")] == entries(created)[("kube-controller-manager", "")]
        status_fields = got[("corral-hollow-node", "status")]["fieldsV1"]
        assert list(status_fields) == ["f:status"]
        assert {"f:phase", "f:podIP", "f:conditions"} <= set(status_fields["f:status"])

        body = dict(patched)
        body["status"] = running("False")
        put = await agent.replace_status(PODS, body)
        got = entries(put)
        ready = got[("corral-agent", "status")]["fieldsV1"]["f:status"]["f:conditions"]['k:{"type":"Ready"}']
        assert "f:status" in ready and "f:lastTransitionTime" not in ready  # what it changed, not the rest
        hollow_ready = got[("corral-hollow-node", "status")]["fieldsV1"]["f:status"]["f:conditions"]
        assert "f:status" not in hollow_ready['k:{"type":"Ready"}']  # taken from its last writer

        again = await agent.replace_status(PODS, put)  # a write that changes nothing
        assert again["metadata"]["managedFields"] == put["metadata"]["managedFields"]
        assert again["metadata"]["resourceVersion"] == put["metadata"]["resourceVersion"]
        fetched = await kcm.get(PODS, "p", "default")
        assert fetched == again


async def test_bad_status_input_is_refused_naming_the_field(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client(user_agent="corral-agent") as client:
        await client.create(PODS, pod("p"), "default")
        with pytest.raises(BadRequestError) as err:
            await client.patch(PODS, "p", {"status": {"phase": 5}}, "default", subresource="status")
        assert "status.phase" in err.value.message
        current = await client.get(PODS, "p", "default")
        body = dict(current)
        body["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": True}]}
        with pytest.raises(BadRequestError) as err:
            await client.replace_status(PODS, body)
        assert "status.conditions.status" in err.value.message
        body["status"] = {"phase": "Running", "bogus": 1}
        strict = await client.request_bytes("PUT", "/api/v1/namespaces/default/pods/p/status",
                                            params={"fieldValidation": "Warn"}, json=body)
        assert b"bogus" not in strict
        assert (await client.get(PODS, "p", "default"))["status"]["phase"] == "Running"
        with pytest.raises(BadRequestError) as err:
            await client.request("PUT", "/api/v1/namespaces/default/pods/p/status",
                                 params={"fieldValidation": "Strict"}, json=body)
        assert 'unknown field "status.bogus"' in err.value.message


async def test_a_bad_body_is_a_400_before_the_object_is_looked_up(tmp_path: Path) -> None:
    """Kubernetes decodes the body first: a missing pod with a badly typed
    body gets the 400, a well-formed one the 404."""
    async with running_server(tmp_path) as server, server.client() as client:
        body = pod("missing")
        body["metadata"]["namespace"] = "default"
        body["status"] = {"phase": 5}
        with pytest.raises(BadRequestError):
            await client.replace_status(PODS, body)
        body["status"] = {"phase": "Running"}
        with pytest.raises(NotFoundError):
            await client.replace_status(PODS, body)


async def test_server_side_apply_through_status_leaves_the_managers_alone(tmp_path: Path) -> None:
    """Apply has no notion of subresources here: through status it must not
    take a manager's main-resource fields away (the status is still written)."""
    async with running_server(tmp_path) as server, server.client() as client:
        applied = await client.patch(PODS, "p", pod("p"), "default", patch_type="apply", field_manager="deployer")
        status = await client.patch(PODS, "p", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                                "status": {"phase": "Running"}},
                                    "default", patch_type="apply", field_manager="deployer", subresource="status")
        assert status["status"]["phase"] == "Running"
        assert status["metadata"]["managedFields"] == applied["metadata"]["managedFields"]
        assert status["spec"]["containers"] == applied["spec"]["containers"]
