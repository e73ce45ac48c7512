"""ServiceAccount admission: every new pod gets Kubernetes' projected
``kube-api-access-XXXXX`` volume, so in-cluster clients find a token bound
to the pod, the cluster CA and the namespace at the standard path.

As Kubernetes' ServiceAccount admission plugin does, the volume is added
(and mounted read-only in every container and init container) unless the
pod or its ServiceAccount sets ``automountServiceAccountToken: false``, or
a container already mounts something at that path. Where Kubernetes would
refuse a pod whose ServiceAccount does not exist yet, this one admits it
without the volume: a namespace's ``default`` account is created by a
controller a moment after the namespace, and a pod created in that moment
should still run (it just has no API credentials).
"""

from __future__ import annotations

from typing import Any

from corral.api.admitview import MISS
from corral.api.errors import NotFound
from corral.api.objects import random_suffix

Obj = dict[str, Any]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_EXPIRATION = 3607
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' name generator's
CONTAINER_KEYS = ("initContainers", "containers")


def api_access_volume(name: str) -> Obj:
    """The projected volume Kubernetes adds, field for field."""
    return {
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{
                    "path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                }]}},
            ],
        },
    }


def wants_token(pod: Obj, account: Obj | None) -> bool:
    """The pod's choice wins over its ServiceAccount's; default yes."""
    spec = pod.get("spec") or {}
    if isinstance(spec.get("automountServiceAccountToken"), bool):
        return bool(spec["automountServiceAccountToken"])
    if account is not None and isinstance(account.get("automountServiceAccountToken"), bool):
        return bool(account["automountServiceAccountToken"])
    return True


def add_api_access(pod: Obj, suffix: str | None = None) -> str | None:
    """Add the volume and its mounts to ``pod`` (in place); the volume's
    name, or None when the pod already has one or mounts that path itself."""
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        return None
    volumes = spec.get("volumes") or []
    if not isinstance(volumes, list):
        return None
    if any(isinstance(v, dict) and str(v.get("name", "")).startswith(VOLUME_PREFIX) for v in volumes):
        return None
    containers = [c for key in CONTAINER_KEYS for c in (spec.get(key) or []) if isinstance(c, dict)]
    taken = {str(v.get("name")) for v in volumes if isinstance(v, dict)}
    name = VOLUME_PREFIX + (suffix or _suffix())
    while name in taken:
        name = VOLUME_PREFIX + _suffix()
    mount = {"name": name, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}
    added = False
    for c in containers:
        mounts = c.get("volumeMounts") or []
        if not isinstance(mounts, list):
            continue
        if any(isinstance(m, dict) and str(m.get("mountPath", "")).rstrip("/") == SERVICE_ACCOUNT_DIR
               for m in mounts):
            continue
        c["volumeMounts"] = [*mounts, dict(mount)]
        added = True
    if not added:
        return None
    spec["volumes"] = [*volumes, api_access_volume(name)]
    return name


def _suffix() -> str:
    return random_suffix(5, SUFFIX_ALPHABET)


async def admit_service_account(objects: Any, registry: Any, namespace: str, pod: Obj, view: Any = None) -> None:
    """For a pod being created: name its ServiceAccount (``default`` when
    unset) and add the API access volume if it should have one. ``view``
    (an api/admitview.py AdmissionView) answers when it holds the account;
    otherwise the store does, so an account created a moment ago counts."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return  # validation names the problem
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    if not isinstance(name, str):
        return
    spec["serviceAccountName"] = name
    account = MISS if view is None else view.get("serviceaccounts", namespace, name)
    if account is MISS:
        rt = registry.lookup("", "v1", "serviceaccounts")
        try:
            account = await objects.get(rt, namespace, name)
        except NotFound:
            return
    if wants_token(pod, account):
        add_api_access(pod)
