"""NodeRestriction for TokenRequest: an agent gets ServiceAccount tokens
only bound to pods on its own node."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from corral.api.certs import sign_client_csr
from corral.client.api import ApiClient
from corral.client.errors import ConflictError, ForbiddenError
from corral.client.nodecert import new_key_and_csr
from corral.client.podtoken import request_pod_token
from corral.client.resources import PODS, SERVICEACCOUNTS
from corral.testing import running_server
from fixtures.agent_cluster import eventually


def _pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "serviceAccountName": "app",
                     "containers": [{"name": "c", "image": "none", "command": ["true"]}]}}


async def test_an_agent_gets_tokens_only_for_its_own_pods(tmp_path: Path):
    async with running_server(tmp_path) as server, server.client() as admin:
        await admin.create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                             "metadata": {"name": "app", "namespace": "default"}})
        mine = await admin.create(PODS, _pod("mine", "n1"))
        theirs = await admin.create(PODS, _pod("theirs", "n2"))
        csr, key = new_key_and_csr("n1")
        cert = sign_client_csr(server.options.data_dir / "pki", x509.load_pem_x509_csr(csr))
        (tmp_path / "n1.crt").write_bytes(cert)
        (tmp_path / "n1.key").write_bytes(key)
        async with ApiClient(server.url, ca_file=str(server.ca_file), cert_file=str(tmp_path / "n1.crt"),
                             key_file=str(tmp_path / "n1.key")) as node:

            async def granted() -> bool:
                try:
                    return bool((await request_pod_token(node, mine, datetime.now(UTC))).token)
                except ForbiddenError:
                    return False  # the node authorizer's graph has not seen the pod yet

            await eventually(granted, what="a token for a pod bound to the node")
            with pytest.raises(ForbiddenError, match="not bound to it"):
                await request_pod_token(node, theirs, datetime.now(UTC))
            unbound = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
            with pytest.raises(ForbiddenError, match="bound to a pod"):
                await node.post_subresource(SERVICEACCOUNTS, "app", "default", "token", unbound)
            # The pod the node check read is the one the token binds to: a
            # reference with another uid (a pod deleted and made again) is refused.
            stale = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                     "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "mine", "uid": "old"}}}
            with pytest.raises(ConflictError, match="does not match the UID in record"):
                await node.post_subresource(SERVICEACCOUNTS, "app", "default", "token", stale)
            fresh = dict(stale, spec={"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "mine",
                                                         "uid": mine["metadata"]["uid"]}})
            reply = await node.post_subresource(SERVICEACCOUNTS, "app", "default", "token", fresh)
            assert reply["status"]["token"] and reply["spec"]["boundObjectRef"]["name"] == "mine"
