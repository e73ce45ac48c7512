"""Agent bootstrap and the node authorizer: a join token buys a node
certificate, and that certificate reaches only its own node's objects."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import aiohttp

from conftest import Users
from corral.api.certs import bootstrap_token_secret, new_bootstrap_token
from corral.client.nodecert import (
    BootstrapError,
    bootstrap_node_certificate,
    client_ssl_context,
    needs_renewal,
    renew_node_certificate,
)


def _pod(name: str, node: str, secret: str) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "nodeName": node, "containers": [{"name": "c", "image": "x", "env": [
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}]}]}}


class Node:
    def __init__(self, url: str, ctx) -> None:
        self.url, self.ctx = url, ctx

    async def call(self, method: str, path: str, body: dict | None = None) -> int:
        async with aiohttp.ClientSession() as s, s.request(method, self.url + path, json=body, ssl=self.ctx) as r:
            await r.read()
            return r.status


async def test_join_token_node_certificate_and_node_authorizer(secure: Users, tmp_path: Path) -> None:
    server = secure.server
    token = new_bootstrap_token()
    async with server.client() as admin:
        await admin.request("POST", "/api/v1/namespaces/kube-system/secrets",
                            json=bootstrap_token_secret(token, dt.timedelta(hours=1), dt.datetime.now(dt.UTC)))
        for name in ("s1", "s2"):
            await admin.request("POST", "/api/v1/namespaces/default/secrets",
                                json={"metadata": {"name": name}, "stringData": {"k": name}})
        await admin.request("POST", "/api/v1/namespaces/default/pods", json=_pod("p1", "n1", "s1"))
        await admin.request("POST", "/api/v1/namespaces/default/pods", json=_pod("p2", "n2", "s2"))

    try:
        forged = token[:-1] + ("x" if token[-1] != "x" else "y")  # the secret's last character, changed
        await bootstrap_node_certificate(server.url, forged, server.ca_file, "n1", tmp_path / "bad")
        raise AssertionError("a forged join token was accepted")
    except BootstrapError as exc:
        assert "401" in str(exc)
    cert, key = await bootstrap_node_certificate(server.url, token, server.ca_file, "n1", tmp_path / "n1")
    assert not needs_renewal(cert)
    n1 = Node(server.url, client_ssl_context(server.ca_file, cert, key))
    await asyncio.sleep(0.2)  # the pods reach the node graph

    assert await n1.call("POST", "/api/v1/nodes", {"metadata": {"name": "n1"}}) == 201
    assert await n1.call("POST", "/api/v1/nodes", {"metadata": {"name": "n2"}}) == 403
    assert await n1.call("GET", "/api/v1/nodes") == 200
    assert await n1.call("GET", "/api/v1/namespaces/default/secrets/s1") == 200
    assert await n1.call("GET", "/api/v1/namespaces/default/secrets/s2") == 403  # another node's pod's Secret
    assert await n1.call("GET", "/api/v1/namespaces/default/secrets") == 403
    assert await n1.call("GET", "/api/v1/namespaces/default/pods/p1") == 200
    assert await n1.call("GET", "/api/v1/namespaces/default/pods/p2") == 403
    lease = {"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}}
    assert await n1.call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease) == 201
    lease["metadata"]["name"] = "n2"
    assert await n1.call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease) == 403
    assert await n1.call("DELETE", "/api/v1/namespaces/default/pods/p2") == 403

    # The join token alone can do nothing but ask for a certificate.
    async with aiohttp.ClientSession() as s, s.get(server.url + "/api/v1/namespaces/default/pods",
                                                 headers={"Authorization": f"Bearer {token}"},
                                                 ssl=client_ssl_context(server.ca_file)) as r:
        assert r.status == 403

    # Renewal with the current certificate; a node cannot get another node's certificate.
    new_cert, new_key = await renew_node_certificate(server.url, server.ca_file, cert, key, "n1")
    renewed = Node(server.url, client_ssl_context(server.ca_file, new_cert, new_key))
    assert await renewed.call("GET", "/api/v1/namespaces/default/secrets/s1") == 200
    try:
        await renew_node_certificate(server.url, server.ca_file, new_cert, new_key, "n2")
        raise AssertionError("node n1 obtained a certificate for n2")
    except BootstrapError as exc:
        assert "not auto-approved" in str(exc)

    who = await secure.kubectl("auth", "whoami", f"--client-certificate={new_cert}", f"--client-key={new_key}",
                               "--kubeconfig=/dev/null", f"--server={server.url}",
                               f"--certificate-authority={server.ca_file}")
    assert "system:node:n1" in who.stdout and "system:nodes" in who.stdout
    csrs = await secure.kubectl("get", "csr")
    assert "kubernetes.io/kube-apiserver-client-kubelet" in csrs.stdout and "Approved,Issued" in csrs.stdout
