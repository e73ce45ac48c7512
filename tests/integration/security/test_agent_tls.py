"""The agent endpoint over mutual TLS (#10, agent <-> server hop).

One `corral agent` joins with a bootstrap token; through it the real kubectl
reads logs and execs; its port lets in only the API servers' kubelet-client
certificate; a Node that publishes another address gets neither the
request nor any credential; serving CSRs are signed only for the Node's own
addresses."""

from __future__ import annotations

import asyncio
import base64
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from cryptography import x509

from conftest import Users
from corral.agent.servingcert import new_serving_csr, sans_of, serving_path
from corral.api.kubelet_client import CLIENT_FILE
from corral.cli.main import main
from corral.client.api import ApiClient
from corral.client.nodecert import credential_path, read_certificate
from corral.client.resources import NODES, PODS
from corral.runtime.process import ProcessRuntime
from fixtures.agent_cluster import eventually

pytestmark = pytest.mark.timeout(150)
CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


def _ctx(ca: Path, cert: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(cert))
    return ctx


async def _get(url: str, ctx: ssl.SSLContext | None, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url, ssl=ctx if ctx is not None else False,
                                                   headers=headers) as r:
        return r.status, await r.text()


async def _agent_port(admin: ApiClient, node: str) -> int | None:
    status = (await admin.get(NODES, node)).get("status") or {}
    return ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")


async def _serving_csr(client: ApiClient, node: str, sans: list[str]) -> dict[str, Any]:
    csr_pem, _key = new_serving_csr(node, sans)
    return await client.request("POST", CSRS, json={
        "metadata": {"generateName": "t-"},
        "spec": {"request": base64.b64encode(csr_pem).decode(), "signerName": "kubernetes.io/kubelet-serving",
                 "usages": ["digital signature", "server auth"]}})


async def _fake_node(admin: ApiClient, name: str, port: int) -> None:
    """A Node (as a compromised agent could publish) whose agent endpoint is
    127.0.0.1:port, with a Running pod bound to it."""
    await admin.create(NODES, {"metadata": {"name": name}})
    await admin.patch(NODES, name, {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}, subresource="status")
    await admin.create(PODS, {"metadata": {"name": f"on-{name}", "namespace": "default"}, "spec": {
        "nodeName": name, "containers": [{"name": "c", "image": "none", "command": ["true"]}]}})
    await admin.patch(PODS, f"on-{name}", {"status": {"phase": "Running"}}, "default", subresource="status")


async def test_agent_over_mutual_tls(secure: Users, tmp_path: Path) -> None:
    server = secure.server
    pki = server.options.data_dir / "pki"
    made = await asyncio.to_thread(CliRunner().invoke, main, ["token", "create", "--data-dir",
                                                               str(server.options.data_dir)])
    assert made.exit_code == 0, made.output
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    log = tmp_path / "agent.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corral.cli.main", "agent", "--server", server.url, "--ca-file",
             str(server.ca_file), "--name", "n1", "--data-dir", str(agent_dir), "--port", "0",
             "--default-runtime", "process", "--proxy-mode", "userspace", "--pod-network", "host",
             "--token", made.stdout.strip()], stdout=out, stderr=subprocess.STDOUT)
    try:
        async with server.client() as admin:
            await admin.create(PODS, {"metadata": {"name": "talk", "namespace": "default"}, "spec": {
                "nodeName": "n1", "hostNetwork": True, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "none",
                                "command": ["sh", "-c", "echo hello-over-tls; exec sleep 60"]}]}})

            async def running() -> bool:
                pod = await admin.get(PODS, "talk", "default")
                return (pod.get("status") or {}).get("phase") == "Running"

            await eventually(running, 60, "the pod Running on the joined agent")

            # The real kubectl through a remote, bootstrapped agent.
            logs = await eventually(lambda: _logs(secure), 20, "kubectl logs")
            assert "hello-over-tls" in logs
            done = await secure.kubectl("exec", "talk", "--", "sh", "-c", "echo exec-$((6*7))")
            assert done.stdout.strip() == "exec-42"

            # The agent serves a certificate for its own node and addresses, from a CSR.
            cert = read_certificate(serving_path(agent_dir))
            assert cert.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
            assert {"127.0.0.1", "n1"} <= sans_of(cert)
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(server.ca_file.read_bytes()))

            # Its port lets in only the API servers' client certificate.
            port = await _agent_port(admin, "n1")
            base = f"https://127.0.0.1:{port}"
            with pytest.raises(aiohttp.ClientError):
                await _get(f"http://127.0.0.1:{port}/stats/summary", None)
            assert (await _get(f"{base}/stats/summary", _ctx(server.ca_file)))[0] == 401
            assert (await _get(f"{base}/containerLogs/default/talk/c", _ctx(server.ca_file),
                               Authorization=f"Bearer {server.token}"))[0] == 401
            node_cert = credential_path(agent_dir)  # CA-signed, but a node's, not an API server's
            assert (await _get(f"{base}/stats/summary", _ctx(server.ca_file, node_cert)))[0] == 403
            status, body = await _get(f"{base}/containerLogs/default/talk/c", _ctx(server.ca_file, pki / CLIENT_FILE))
            assert status == 200 and "hello-over-tls" in body

            # A Node publishing n1's endpoint: the API server sees n1's certificate and stops.
            await _fake_node(admin, "liar", port)
            refused = await secure.kubectl("logs", "on-liar", check=False)
            assert refused.returncode != 0 and "not 'system:node:liar'" in refused.stderr, refused.stderr
            # ... or a listener of its own: it receives a TLS hello, never a token.
            received = bytearray()

            async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                received.extend(await reader.read(65536))
                writer.close()

            listener = await asyncio.start_server(record, "127.0.0.1", 0)
            async with listener:
                await _fake_node(admin, "thief", listener.sockets[0].getsockname()[1])
                stolen = await secure.kubectl("logs", "on-thief", check=False)
                assert stolen.returncode != 0
                assert received and server.token.encode() not in received and b"Authorization" not in received

            # Serving certificates only for the node's own name and addresses.
            async with ApiClient(server.url, ca_file=str(server.ca_file), cert_file=str(node_cert),
                                 key_file=str(node_cert)) as as_n1:
                own = await _serving_csr(as_n1, "n1", ["127.0.0.1", "n1"])
                assert own.get("status", {}).get("certificate")
                for node, sans in (("n1", ["10.1.2.3"]), ("n1", ["127.0.0.1", "other-host"]),
                                   ("liar", ["127.0.0.1"])):
                    pending = await _serving_csr(as_n1, node, sans)
                    assert not (pending.get("status") or {}).get("certificate"), (node, sans)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        runtime = ProcessRuntime(agent_dir / "runtime")
        for handle in await runtime.list():
            await runtime.remove_container(handle)
        print(log.read_text()[-3000:])


async def _logs(secure: Users) -> str | None:
    result = await secure.kubectl("logs", "talk", check=False)
    return result.stdout if result.returncode == 0 and result.stdout else None
