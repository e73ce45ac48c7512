"""Expired bootstrap tokens and finished CSRs are deleted, on a fake clock
against the real in-process API server, and nothing else is touched."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from corral.api.certs import bootstrap_token_secret
from corral.client.api import ApiClient
from corral.client.errors import NotFoundError
from corral.client.nodecert import CSR_PATH, new_key_and_csr
from corral.client.resources import CERTIFICATESIGNINGREQUESTS, SECRETS
from corral.clock import FakeClock, RealClock
from corral.controllers.csrcleaner import CsrCleaner
from corral.controllers.informers import SharedInformers
from corral.controllers.tokencleaner import BootstrapTokenCleaner
from corral.testing import running_server

pytestmark = pytest.mark.timeout(60)


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def gone(client, res, name: str, namespace: str | None = None) -> bool:
    try:
        await client.get(res, name, namespace)
    except NotFoundError:
        return True
    return False


@pytest.fixture
async def env(tmp_path):
    clock = FakeClock(RealClock().now())
    async with running_server(tmp_path) as srv:
        client = srv.client()
        informers = SharedInformers(client, clock=clock)
        controllers = [BootstrapTokenCleaner(client, informers, clock=clock), CsrCleaner(client, informers, clock=clock)]
        tasks = [asyncio.create_task(informers.run())] + [asyncio.create_task(c.run()) for c in controllers]
        try:
            yield client, clock
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()


async def test_expired_bootstrap_tokens_are_deleted_when_they_expire(env) -> None:
    client, clock = env
    now = clock.now()
    await client.create(SECRETS, bootstrap_token_secret("aaaaaa.0123456789abcdef", dt.timedelta(hours=-1), now), "kube-system")
    await client.create(SECRETS, bootstrap_token_secret("bbbbbb.0123456789abcdef", dt.timedelta(minutes=10), now), "kube-system")
    # The same shape outside kube-system is somebody else's business.
    other = bootstrap_token_secret("cccccc.0123456789abcdef", dt.timedelta(hours=-1), now)
    other["metadata"]["namespace"] = "default"
    await client.create(SECRETS, other, "default")
    # A token without an expiration never expires.
    forever = bootstrap_token_secret("dddddd.0123456789abcdef", dt.timedelta(hours=1), now)
    del forever["data"]["expiration"]
    await client.create(SECRETS, forever, "kube-system")

    await eventually(lambda: gone(client, SECRETS, "bootstrap-token-aaaaaa", "kube-system"), "the expired token's deletion")
    assert not await gone(client, SECRETS, "bootstrap-token-bbbbbb", "kube-system")

    await clock.advance(11 * 60)
    await eventually(lambda: gone(client, SECRETS, "bootstrap-token-bbbbbb", "kube-system"), "deletion at expiry")
    assert not await gone(client, SECRETS, "bootstrap-token-cccccc", "default")
    assert not await gone(client, SECRETS, "bootstrap-token-dddddd", "kube-system")


async def make_csr(client, name: str, *, signer: str, usages: list[str]) -> Any:
    import base64

    csr_pem, _ = new_key_and_csr("n1")
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": base64.b64encode(csr_pem).decode(), "signerName": signer, "usages": usages}}
    return await client.request("POST", CSR_PATH, json=body)


async def test_finished_csrs_go_after_an_hour_pending_ones_after_a_day(env) -> None:
    client, clock = env
    # A node joining with a bootstrap token gets its CSR approved and signed
    # on creation; a custom signer's CSR stays pending: nobody approves it.
    token = "eeeeee.0123456789abcdef"
    await client.create(SECRETS, bootstrap_token_secret(token, dt.timedelta(hours=2), clock.now()), "kube-system")
    joiner = ApiClient(client.server, token=token, ca_data=client.ca_pem)
    try:
        await make_csr(joiner, "issued", signer="kubernetes.io/kube-apiserver-client-kubelet",
                       usages=["digital signature", "client auth"])
    finally:
        await joiner.close()
    await make_csr(client, "pending", signer="example.com/nobody", usages=["digital signature", "client auth"])
    issued = await client.get(CERTIFICATESIGNINGREQUESTS, "issued")
    assert any(c["type"] == "Approved" for c in issued["status"]["conditions"])

    await clock.advance(59 * 60)
    await asyncio.sleep(0.3)
    assert not await gone(client, CERTIFICATESIGNINGREQUESTS, "issued")
    await clock.advance(2 * 60)
    await eventually(lambda: gone(client, CERTIFICATESIGNINGREQUESTS, "issued"), "the issued CSR's deletion")
    assert not await gone(client, CERTIFICATESIGNINGREQUESTS, "pending")

    await clock.advance(23 * 3600)
    await eventually(lambda: gone(client, CERTIFICATESIGNINGREQUESTS, "pending"), "the pending CSR's deletion")
