"""``kubectl certificate approve|deny`` through the approval subresource:
an approved user CSR is signed at once and the certificate logs in; a
denied one gets nothing; a signer's rules still hold after approval; the
permanent conditions cannot be removed or combined."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.timeout(120)


def key_and_csr(cn: str, org: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def csr_object(name: str, csr_pem: bytes, signer: str, usages: list[str]) -> str:
    return json.dumps({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                       "metadata": {"name": name},
                       "spec": {"request": base64.b64encode(csr_pem).decode(), "signerName": signer,
                                "usages": usages}})


def get_csr(kubectl, name: str) -> dict:
    return json.loads(kubectl("get", "csr", name, "-o", "json"))


def user_kubeconfig(kubectl, api_server, tmp_path: Path, name: str, org: str) -> Path:
    """A kubeconfig that logs in as ``name`` (group ``org``) with a client
    certificate approved through ``kubectl certificate approve``."""
    key_pem, csr_pem = key_and_csr(name, org)
    kubectl("create", "-f", "-", input=csr_object(name, csr_pem, "kubernetes.io/kube-apiserver-client",
                                                  ["digital signature", "key encipherment", "client auth"]))
    assert "Pending" in kubectl("get", "csr", name)
    assert "approved" in kubectl("certificate", "approve", name)
    csr = get_csr(kubectl, name)
    approved = [c for c in csr["status"]["conditions"] if c["type"] == "Approved"]
    assert approved and approved[0]["reason"] == "KubectlApprove" and approved[0]["lastTransitionTime"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(csr["status"]["certificate"]))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
    assert "Approved,Issued" in kubectl("get", "csr", name)

    admin = yaml.safe_load(api_server.kubeconfig.read_text())
    mine = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
            "users": [{"name": name, "user": {
                "client-certificate-data": csr["status"]["certificate"],
                "client-key-data": base64.b64encode(key_pem).decode()}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": name}}]}
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(mine))
    return path


def test_approved_user_certificate_is_issued_and_logs_in(kubectl, api_server, tmp_path: Path) -> None:
    name = f"jane-{uuid.uuid4().hex[:6]}"
    path = user_kubeconfig(kubectl, api_server, tmp_path, name, "devs")
    info = json.loads(kubectl("--kubeconfig", str(path), "auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert info["username"] == name and "devs" in info["groups"]


def test_approving_needs_the_approve_verb_on_the_signer(kubectl, api_server, tmp_path: Path) -> None:
    approver = f"approver-{uuid.uuid4().hex[:6]}"
    path = user_kubeconfig(kubectl, api_server, tmp_path, approver, "approvers")
    kubectl("create", "clusterrole", approver, "--verb=get,list,update",
            "--resource=certificatesigningrequests,certificatesigningrequests/approval")
    kubectl("create", "clusterrolebinding", approver, f"--clusterrole={approver}", f"--user={approver}")
    target = f"target-{uuid.uuid4().hex[:6]}"
    _, csr_pem = key_and_csr(target, "devs")
    kubectl("create", "-f", "-", input=csr_object(target, csr_pem, "kubernetes.io/kube-apiserver-client",
                                                  ["client auth"]))

    refused = kubectl.run("--kubeconfig", str(path), "certificate", "approve", target, check=False)
    assert refused.returncode != 0 and "signerName" in refused.stderr, refused.stderr
    assert "Pending" in kubectl("get", "csr", target)

    signer_role = f"{approver}-signer"
    kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": signer_role},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["approve"],
                   "resourceNames": ["kubernetes.io/kube-apiserver-client"]}]}))
    kubectl("create", "clusterrolebinding", signer_role, f"--clusterrole={signer_role}", f"--user={approver}")
    kubectl("--kubeconfig", str(path), "certificate", "approve", target)
    assert "Approved,Issued" in kubectl("get", "csr", target)


def test_denied_csr_gets_no_certificate_and_cannot_be_approved_after(kubectl, k8s) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    name = f"deny-{uuid.uuid4().hex[:6]}"
    _, csr_pem = key_and_csr(name, "devs")
    kubectl("create", "-f", "-", input=csr_object(name, csr_pem, "kubernetes.io/kube-apiserver-client", ["client auth"]))
    assert "denied" in kubectl("certificate", "deny", name)
    csr = get_csr(kubectl, name)
    assert [c["type"] for c in csr["status"]["conditions"]] == ["Denied"]
    assert not csr["status"].get("certificate")

    api = client.CertificatesV1Api(k8s)
    body = api.read_certificate_signing_request(name)
    body.status.conditions.append(client.V1CertificateSigningRequestCondition(type="Approved", status="True"))
    with pytest.raises(ApiException) as both:
        api.replace_certificate_signing_request_approval(name, body)
    assert both.value.status == 422 and "mutually exclusive" in both.value.body

    body = api.read_certificate_signing_request(name)
    body.status.conditions = []
    with pytest.raises(ApiException) as removed:
        api.replace_certificate_signing_request_approval(name, body)
    assert removed.value.status == 422 and "may not be removed" in removed.value.body
    assert [c["type"] for c in get_csr(kubectl, name)["status"]["conditions"]] == ["Denied"]


def test_signer_rules_hold_after_approval(kubectl) -> None:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    # A kubelet client certificate must name a node and be for client auth.
    _, csr_pem = key_and_csr("not-a-node", "devs")
    kubectl("create", "-f", "-", input=csr_object(name, csr_pem, "kubernetes.io/kube-apiserver-client-kubelet",
                                                  ["client auth"]))
    kubectl("certificate", "approve", name)
    csr = get_csr(kubectl, name)
    failed = [c for c in csr["status"]["conditions"] if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == "SignerValidationFailure" and "system:node" in failed[0]["message"]
    assert not csr["status"].get("certificate")


def test_approval_needs_a_known_csr_and_a_valid_body(kubectl, k8s) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.CertificatesV1Api(k8s)
    with pytest.raises(ApiException) as missing:
        api.replace_certificate_signing_request_approval(
            "nobody", client.V1CertificateSigningRequest(
                metadata=client.V1ObjectMeta(name="nobody"),
                spec=client.V1CertificateSigningRequestSpec(request="eA==", signer_name="x.io/y")))
    assert missing.value.status == 404
    discovery = json.loads(kubectl("get", "--raw", "/apis/certificates.k8s.io/v1"))
    assert "certificatesigningrequests/approval" in {r["name"] for r in discovery["resources"]}
