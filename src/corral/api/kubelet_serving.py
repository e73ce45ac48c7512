"""Approving and signing agents' serving certificates
(``kubernetes.io/kubelet-serving``).

Kubernetes leaves these CSRs to an operator or an external approver; corral
approves one at once when all of these hold, and otherwise stores it pending:

- the subject is ``CN=system:node:<name>, O=system:nodes``;
- the requester is that node (``system:node:<name>`` in ``system:nodes``) or
  an administrator (``system:masters``, who could approve it anyway);
- the Node exists, and every SAN is one of its published addresses or its
  name: IP SANs among its InternalIP/ExternalIP addresses, DNS SANs among its
  name and its Hostname/InternalDNS/ExternalDNS addresses; no other SAN kinds.

A node can only be issued a certificate for its own name, which the API
server checks when it dials the node (api/kubelet_client.py): publishing
another node's address gets it nothing that node's certificate would.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from corral.agent.servingcert import sign_serving
from corral.api.auth import User
from corral.api.certs import NODE_GROUP, NODE_PREFIX, load_ca, subject_of
from corral.api.errors import NotFound

if TYPE_CHECKING:
    from corral.api.context import ServerContext

SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SERVING_VALIDITY = dt.timedelta(days=365)
MASTERS = "system:masters"
IP_TYPES = ("InternalIP", "ExternalIP")
DNS_TYPES = ("Hostname", "InternalDNS", "ExternalDNS")


def requester_may_ask(user: User, cn: str, orgs: list[str]) -> bool:
    if not cn.startswith(NODE_PREFIX) or orgs != [NODE_GROUP]:
        return False
    return MASTERS in user.groups or (user.name == cn and NODE_GROUP in user.groups)


def san_problem(csr: x509.CertificateSigningRequest, node: dict[str, Any]) -> str:
    """Why the CSR's SANs are not all the Node's ("" if they are)."""
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no subject alternative names"
    addresses = (node.get("status") or {}).get("addresses") or []
    ips = set()
    for a in addresses:
        if a.get("type") in IP_TYPES:
            try:
                ips.add(ipaddress.ip_address(str(a.get("address"))))
            except ValueError:
                continue
    names = {node["metadata"]["name"]} | {a.get("address") for a in addresses if a.get("type") in DNS_TYPES}
    for value in sans:
        if isinstance(value, x509.IPAddress):
            if value.value not in ips:
                return f"{value.value} is not an address of node {node['metadata']['name']}"
        elif isinstance(value, x509.DNSName):
            if value.value not in names:
                return f"{value.value} is not a name of node {node['metadata']['name']}"
        else:
            return f"{value} is not an IP or DNS name"
    return ""


async def approve_serving(ctx: ServerContext, pki: Path, user: User,
                          csr: x509.CertificateSigningRequest) -> tuple[bytes | None, str]:
    """(certificate, "") when the rules above hold, else (None, why not)."""
    cn, orgs = subject_of(csr)
    if not requester_may_ask(user, cn, orgs):
        return None, f"{user.name} may not be issued a serving certificate for {cn!r}"
    node_rt = ctx.registry.lookup("", "v1", "nodes")
    assert node_rt is not None
    try:
        node = await ctx.objects.get(node_rt, None, cn.removeprefix(NODE_PREFIX))
    except NotFound:
        return None, f"there is no Node {cn.removeprefix(NODE_PREFIX)}"
    problem = san_problem(csr, node)
    if problem:
        return None, problem
    ca_cert, ca_key = load_ca(Path(pki))
    return sign_serving(ca_cert, ca_key, csr, SERVING_VALIDITY), ""


def issue_local(pki: Path, node_name: str, addresses: list[str], dest: Path) -> None:
    """A serving credential straight from the CA on this machine (``corral
    up``'s own agent, whose addresses the server chose), kept while usable."""
    from corral.agent.servingcert import new_serving_csr, stored_serving_problem
    from corral.client.nodecert import write_credential

    wanted = [*addresses, node_name]
    if not stored_serving_problem(dest, node_name, wanted, (Path(pki) / "ca.crt").read_bytes()):
        return
    csr_pem, key_pem = new_serving_csr(node_name, wanted)
    ca_cert, ca_key = load_ca(Path(pki))
    cert = sign_serving(ca_cert, ca_key, x509.load_pem_x509_csr(csr_pem), SERVING_VALIDITY)
    write_credential(dest, key_pem, cert)

