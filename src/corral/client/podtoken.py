"""What an agent puts in a pod so in-cluster clients work: a ServiceAccount
token bound to the pod, the cluster CA and the namespace, in the files at
``/var/run/secrets/kubernetes.io/serviceaccount`` that the ``kubernetes``
package's ``load_incluster_config`` reads (with the KUBERNETES_SERVICE_HOST
and KUBERNETES_SERVICE_PORT environment variables).

The token is asked for through the TokenRequest API, bound to the pod's uid
so it dies with the pod, and refreshed when 80% of its life has passed (as
the kubelet does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from corral.client.resources import SERVICEACCOUNTS

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_EXPIRATION = 3607  # Kubernetes' projected-token default (an hour and a bit)
REFRESH_AT = 0.8


@dataclass(frozen=True, slots=True)
class PodToken:
    token: str
    issued: datetime
    expires: datetime

    def needs_refresh(self, now: datetime) -> bool:
        lifetime = (self.expires - self.issued).total_seconds()
        return (now - self.issued).total_seconds() >= lifetime * REFRESH_AT


async def request_pod_token(client: Any, pod: dict[str, Any], now: datetime, *, audiences: list[str] | None = None,
                            expiration_seconds: int = DEFAULT_EXPIRATION) -> PodToken:
    """A token for the pod's ServiceAccount, bound to the pod."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    body: dict[str, Any] = {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": expiration_seconds,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"),
                                    "uid": meta.get("uid")}},
    }
    if audiences:
        body["spec"]["audiences"] = audiences
    reply = await client.post_subresource(SERVICEACCOUNTS, spec.get("serviceAccountName") or "default",
                                          meta.get("namespace"), "token", body)
    status = reply.get("status") or {}
    expires = datetime.fromisoformat(str(status["expirationTimestamp"]).replace("Z", "+00:00"))
    return PodToken(str(status["token"]), now, expires)


def projected_files(token: PodToken, ca_pem: bytes, namespace: str) -> dict[str, bytes]:
    """File name (under SERVICE_ACCOUNT_DIR) → content."""
    return {"token": token.token.encode(), "ca.crt": ca_pem, "namespace": namespace.encode()}
