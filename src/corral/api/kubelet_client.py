"""How the API server calls agents: HTTPS both ways, never the admin token
(Kubernetes' apiserver-kubelet-client certificate and kubelet CA check).

Each API server makes its own client certificate, ``CN=kube-apiserver-kubelet-client``,
from the cluster CA when it starts (``DATA_DIR/pki/kubelet-client.pem``, key
and certificate in one 0600 file; with several servers over etcd each has
its own, all from the shared CA). It verifies the agent's serving
certificate against the CA and the address it dialled (SANs), then checks
the certificate is that node's (``CN=system:node:<node>``) before anything
the agent says is passed on: a node that publishes another node's address,
or a stranger's, gets a refused request and learns no credential, since a
client certificate proves possession without revealing the key.
"""

from __future__ import annotations

import datetime as dt
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from corral.agent.servingcert import KUBELET_CLIENT_CN, caller_identity
from corral.api.certs import load_ca
from corral.api.errors import BadRequest, ServiceUnavailable
from corral.client.nodecert import write_credential

if TYPE_CHECKING:
    from corral.api.context import ServerContext

CLIENT_FILE = "kubelet-client.pem"
VALIDITY = dt.timedelta(days=365)
RENEW_AT = 0.7
"""Make a new one past this fraction of the lifetime (checked at start and hourly)."""
RECHECK_SECONDS = 3600.0


def _problem(path: Path, ca: x509.Certificate, now: dt.datetime) -> str:
    if not path.exists():
        return "missing"
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        serialization.load_pem_private_key(path.read_bytes(), None)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        return f"unusable ({exc})"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    if now >= cert.not_valid_before_utc + lifetime * RENEW_AT:
        return "near expiry"
    return ""


def ensure_client_certificate(pki: Path, now: dt.datetime | None = None) -> Path:
    """The kubelet-client credential in ``pki``, made or renewed if needed."""
    path = Path(pki) / CLIENT_FILE
    ca_cert, ca_key = load_ca(Path(pki))
    now = now or dt.datetime.now(dt.UTC)
    if not _problem(path, ca_cert, now):
        return path
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, KUBELET_CLIENT_CN)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    write_credential(path, key_pem, cert.public_bytes(serialization.Encoding.PEM))
    return path


@dataclass(frozen=True)
class AgentEndpoint:
    node: str
    url: str
    """https://host:port of the node's agent, as the Node publishes it."""


class KubeletClient:
    """The TLS context agents are dialled with, kept current."""

    def __init__(self, pki: Path) -> None:
        self.pki = Path(pki)
        self._context = self._make()
        self._checked = time.monotonic()

    def _make(self) -> ssl.SSLContext:
        path = ensure_client_certificate(self.pki)
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(path), str(path))
        return ctx

    def context(self) -> ssl.SSLContext:
        if time.monotonic() - self._checked > RECHECK_SECONDS:
            self._checked = time.monotonic()
            self._context = self._make()
        return self._context

    def session(self, endpoint: AgentEndpoint, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
        """A session whose connections are checked to reach ``endpoint``'s node
        before a request is sent on them."""
        return aiohttp.ClientSession(timeout=timeout, connector=_NodeConnector(endpoint, ssl=self.context()))


class _NodeConnector(aiohttp.TCPConnector):
    """Refuses a TLS connection whose peer is not the expected node, after the
    handshake (CA and SAN checked by the context) and before any request."""

    def __init__(self, endpoint: AgentEndpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
        proto = await super()._create_connection(req, traces, timeout)
        transport = proto.transport
        problem = identity_problem(transport.get_extra_info("peercert") if transport else None,
                                   self.endpoint.node)
        if problem:
            proto.close()
            raise ServiceUnavailable(f"refusing the agent at {self.endpoint.url} for node "
                                     f"{self.endpoint.node}: {problem}")
        return proto


def kubelet_client(ctx: ServerContext) -> KubeletClient:
    client = getattr(ctx.settings, "kubelet_client", None)
    if client is None:
        raise ServiceUnavailable("this API server has no kubelet client certificate to call agents with")
    return client


def node_endpoint(node: dict[str, Any]) -> AgentEndpoint | None:
    """Where the Node says its agent listens (None if it does not say)."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("Hostname")
    if not port or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return AgentEndpoint(node["metadata"]["name"], f"https://{host}:{port}")


async def pod_endpoint(ctx: ServerContext, pod: dict[str, Any]) -> AgentEndpoint:
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise BadRequest(f"pod {pod['metadata']['name']} does not have a host assigned")
    node_rt = ctx.registry.lookup("", "v1", "nodes")
    assert node_rt is not None
    endpoint = node_endpoint(await ctx.objects.get(node_rt, None, node_name))
    if endpoint is None:
        raise ServiceUnavailable(f"node {node_name} does not publish an agent endpoint")
    return endpoint


def identity_problem(peercert: dict[str, Any] | None, node: str) -> str:
    """Why the agent that answered is not ``node``'s ("" if it is)."""
    cn = caller_identity(peercert)
    want = f"system:node:{node}"
    if cn == want:
        return ""
    return f"the agent's certificate is for {cn or 'no one'!r}, not {want!r}"
