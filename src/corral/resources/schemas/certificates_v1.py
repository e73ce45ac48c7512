"""certificates.k8s.io/v1 CertificateSigningRequest."""

from __future__ import annotations

from corral.resources.schemas.dsl import (
    arr,
    byte_string,
    integer,
    kind_object,
    map_of,
    obj,
    string,
    strings,
    time,
)
from corral.resources.schemas.meta import OBJECT_META

CERTS = "io.k8s.api.certificates.v1"

CERTIFICATE_SIGNING_REQUEST = kind_object(
    f"{CERTS}.CertificateSigningRequest",
    "A request for a certificate signed by a named signer; the node bootstrap asks "
    "kubernetes.io/kube-apiserver-client-kubelet for its client certificate.",
    {
        "spec": obj("The request.", {
            "expirationSeconds": integer("Requested validity."),
            "extra": map_of(strings(), "Extra attributes of the requester (set by the server)."),
            "groups": strings("Groups of the requester (set by the server)."),
            "request": byte_string("PEM-encoded PKCS#10 certificate request."),
            "signerName": string("Who should sign, e.g. kubernetes.io/kube-apiserver-client-kubelet."),
            "uid": string("UID of the requester (set by the server)."),
            "usages": strings("Key usages, e.g. digital signature, client auth."),
            "username": string("Name of the requester (set by the server)."),
        }, ref=f"{CERTS}.CertificateSigningRequestSpec", required=("request", "signerName")),
        "status": obj("Approval and the issued certificate.", {
            "certificate": byte_string("PEM-encoded issued certificate."),
            "conditions": arr(obj("Approved, Denied or Failed.", {
                "lastTransitionTime": time(), "lastUpdateTime": time(), "message": string(),
                "reason": string(), "status": string(), "type": string(),
            }, ref=f"{CERTS}.CertificateSigningRequestCondition"), list_type="map", keys=("type",)),
        }, ref=f"{CERTS}.CertificateSigningRequestStatus"),
    },
    metadata=OBJECT_META,
    required=("spec",),
)
