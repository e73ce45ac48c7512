"""`corral agent --token JOIN_TOKEN`: the join token buys a node client
certificate, the agent then works with the certificate only (so the node
authorizer confines it), reuses it after a restart and renews it before it
expires."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.x509.oid import NameOID

from conftest import Users
from corral.agent.agent import Agent
from corral.api.auth import read_token_file
from corral.api.certs import sign_client_csr
from corral.cli.main import main
from corral.cli.token import create_token, token_secret
from corral.client.nodecert import (
    BootstrapError,
    bootstrap_node_certificate,
    client_ssl_context,
    credential_path,
    new_key_and_csr,
    node_api_client,
    read_certificate,
)
from corral.client.resources import LEASES, PODS
from corral.clock import FakeClock
from corral.runtime.process import ProcessRuntime
from fixtures.agent_cluster import eventually

pytestmark = pytest.mark.timeout(120)


def _pod(name: str, node: str, secret: str) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "nodeName": node, "hostNetwork": True, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": "none", "command": ["sleep", "60"],
            "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}]}]}}


async def _status(url: str, path: str, ctx) -> int:
    async with aiohttp.ClientSession() as s, s.get(url + path, ssl=ctx) as r:
        await r.read()
        return r.status


async def _reported(client, name: str) -> bool:
    """The agent has written the pod's container statuses (it could read the
    pod bound to it and patch its status). Whether the container then runs
    depends on the runtime and pod network, which are not under test here."""
    pod = await client.get(PODS, name, "default")
    return bool((pod.get("status") or {}).get("containerStatuses"))


class AgentProcess:
    def __init__(self, server, data_dir: Path, token: str | None) -> None:
        args = [sys.executable, "-m", "corral.cli.main", "agent", "--server", server.url,
                "--ca-file", str(server.ca_file), "--name", "n1", "--data-dir", str(data_dir),
                "--port", "0", "--default-runtime", "process", "--proxy-mode", "userspace"]
        self.log = data_dir.parent / "agent.log"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*args, *(["--token", token] if token else [])],
                                         stdout=out, stderr=subprocess.STDOUT)

    async def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)


async def _cleanup(runtime_dir: Path) -> None:
    runtime = ProcessRuntime(runtime_dir)
    for handle in await runtime.list():
        await runtime.remove_container(handle)


async def _corral(*args: str) -> Result:
    """The CLI in a thread (it runs its own event loop), so this loop keeps serving."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


async def test_agent_joins_with_a_token_then_lives_on_its_certificate(secure: Users, tmp_path: Path) -> None:
    server = secure.server
    data = str(server.options.data_dir)
    made = await _corral("token", "create", "--data-dir", data, "--ttl", "10m", "--description", "rack 7")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    async with server.client() as admin:
        for name in ("own", "other"):
            await admin.request("POST", "/api/v1/namespaces/default/secrets",
                                json={"metadata": {"name": f"s-{name}"}, "stringData": {"k": name}})
        await admin.request("POST", "/api/v1/namespaces/default/pods", json=_pod("own", "n1", "s-own"))
        await admin.request("POST", "/api/v1/namespaces/default/pods", json=_pod("other", "n2", "s-other"))

        agent_dir = tmp_path / "agent"
        agent = AgentProcess(server, agent_dir, token)
        try:
            await eventually(lambda: _reported(admin, "own"), 60, "the agent reporting its pod")
            pem = credential_path(agent_dir)
            assert pem.stat().st_mode & 0o777 == 0o600
            cert = read_certificate(pem)
            assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
            assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
            ctx = client_ssl_context(server.ca_file, pem, pem)
            assert await _status(server.url, "/api/v1/namespaces/default/secrets/s-own", ctx) == 200
            assert await _status(server.url, "/api/v1/namespaces/default/secrets/s-other", ctx) == 403
            # The agent's requests were its node's, not the token's: the Node was
            # created by system:node:n1 (NodeRestriction would refuse another name).
            await agent.stop()

            # A restart needs no token: the stored certificate is reused.
            lease = await admin.get(LEASES, "n1", "kube-node-lease")
            before = lease["spec"]["renewTime"]
            agent = AgentProcess(server, agent_dir, None)

            async def renewed() -> bool:
                cur = await admin.get(LEASES, "n1", "kube-node-lease")
                return cur["spec"]["renewTime"] != before

            await eventually(renewed, 30, "the restarted agent renewing its Lease")
            assert read_certificate(pem).serial_number == cert.serial_number
        finally:
            await agent.stop()
            await _cleanup(agent_dir / "runtime")
            print((tmp_path / "agent.log").read_text()[-3000:])

    # A deleted token buys nothing any more; the CLI lists what is left.
    listed = await _corral("token", "list", "--data-dir", data)
    assert token.split(".")[0] in listed.stdout and "rack 7" in listed.stdout
    assert token.split(".")[1] not in listed.stdout
    deleted = await _corral("token", "delete", "--data-dir", data, token.split(".")[0])
    assert deleted.exit_code == 0, deleted.output
    with pytest.raises(BootstrapError, match="401"):
        await bootstrap_node_certificate(server.url, token, server.ca_file, "n9", tmp_path / "n9")


async def test_expired_token_cannot_join(secure: Users, tmp_path: Path) -> None:
    server = secure.server
    token = "abcdef.0123456789abcdef"
    expired = token_secret(token, ttl=dt.timedelta(hours=1), now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    async with server.client() as admin:
        await admin.request("POST", "/api/v1/namespaces/kube-system/secrets", json=expired)
    with pytest.raises(BootstrapError, match="401"):
        await bootstrap_node_certificate(server.url, token, server.ca_file, "n1", tmp_path / "n1")
    agent = AgentProcess(server, tmp_path / "agent", token)
    rc = await asyncio.to_thread(agent.proc.wait, 60)
    assert rc != 0
    assert "cannot join the cluster" in agent.log.read_text()
    assert not credential_path(tmp_path / "agent").exists()


async def test_rotation_replaces_the_certificate_and_the_agent_keeps_working(secure: Users,
                                                                            tmp_path: Path) -> None:
    server = secure.server
    agent_dir = tmp_path / "agent"
    # A stored certificate with 10 minutes left, as if issued long ago.
    csr_pem, key_pem = new_key_and_csr("n1")
    short = sign_client_csr(server.options.data_dir / "pki", x509.load_pem_x509_csr(csr_pem),
                            dt.timedelta(minutes=10))
    pem = credential_path(agent_dir)
    pem.parent.mkdir(parents=True)
    pem.write_bytes(key_pem + short)
    os.chmod(pem, 0o600)
    first = read_certificate(pem)
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with server.client() as admin:
        await admin.request("POST", "/api/v1/namespaces/default/secrets",
                            json={"metadata": {"name": "s1"}, "stringData": {"k": "v"}})
        async with node_api_client(server.url, None, ca_file=str(server.ca_file), insecure=False, node_name="n1",
                                   data_dir=agent_dir, clock=clock) as client:
            agent = Agent(client, node_name="n1", data_dir=agent_dir,
                          runtime=ProcessRuntime(agent_dir / "runtime"), port=0)
            task = asyncio.create_task(agent.run())
            try:
                await asyncio.wait_for(agent.ready.wait(), 30)
                await clock.advance(9 * 60)  # past 90 % of the 15 minutes (issued 5 minutes back-dated)

                async def rotated() -> bool:
                    return read_certificate(pem).serial_number != first.serial_number

                await eventually(rotated, 20, "a renewed certificate on disk")
                new = read_certificate(pem)
                assert new.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)
                assert pem.stat().st_mode & 0o777 == 0o600
                # The agent keeps working (new connections carry the new certificate).
                await admin.request("POST", "/api/v1/namespaces/default/pods", json=_pod("after", "n1", "s1"))
                await eventually(lambda: _reported(admin, "after"), 60, "the agent reporting a pod bound after the rotation")
                lease = await admin.get(LEASES, "n1", "kube-node-lease")

                async def renewed() -> bool:
                    cur = await admin.get(LEASES, "n1", "kube-node-lease")
                    return cur["spec"]["renewTime"] != lease["spec"]["renewTime"]

                await eventually(renewed, 30, "a Lease renewal after the rotation")
                ctx = client_ssl_context(server.ca_file, pem, pem)
                assert await _status(server.url, "/api/v1/namespaces/default/secrets/s1", ctx) == 200
                await clock.advance(3600)  # the new certificate is far from its renewal window
                await asyncio.sleep(0.3)
                assert read_certificate(pem).serial_number == new.serial_number
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await _cleanup(agent_dir / "runtime")


async def test_create_token_refuses_bad_input(secure: Users) -> None:
    with pytest.raises(ValueError, match="ttl"):
        token_secret("abcdef.0123456789abcdef", ttl=dt.timedelta(0), now=dt.datetime.now(dt.UTC))
    with pytest.raises(ValueError, match="groups"):
        token_secret("abcdef.0123456789abcdef", ttl=None, now=dt.datetime.now(dt.UTC), groups=("system:masters",))
    async with secure.server.client() as admin:
        token = await create_token(admin, ttl=None, description="forever")
        secret = await admin.request("GET", f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{token[:6]}")
        assert secret["type"] == "bootstrap.kubernetes.io/token" and "expiration" not in secret["data"]
    bad = await _corral("token", "create", "--data-dir", str(secure.server.options.data_dir), "--ttl", "soon")
    assert bad.exit_code != 0 and "ttl" in bad.output


async def test_the_local_agent_of_corral_up_is_a_node_too(secure: Users) -> None:
    from corral.client.resources import NODES
    from corral.cluster import LocalAgent

    server = secure.server
    async with server.client() as admin, LocalAgent(server, "local-1", default_runtime="process"):
        async def registered() -> bool:
            return any(n["metadata"]["name"] == "local-1" for n in (await admin.list(NODES))["items"])

        await eventually(registered, 30, "the local agent's Node")
        # On the server's own Unix socket (no TLS, so no certificate): a node
        # token in the server's token file (agent/localidentity.py).
        assert server.local_socket is not None
        users = read_token_file(server.options.data_dir / "tokens.csv")
        node = [u for u in users.values() if u.name == "system:node:local-1"]
        assert [u.groups for u in node] == [("system:nodes",)]
        async def audited() -> bool:  # the audit log is written in batches, within ~0.25 s
            text = (server.options.data_dir / "audit.log").read_text()
            return '"username":"system:node:local-1"' in text.replace(" ", "")

        await eventually(audited, 10, "the node's requests in the audit log")
    await _cleanup(server.options.data_dir / "agent" / "runtime")
