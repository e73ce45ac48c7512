"""ServiceAccount admission: the kube-api-access volume, as Kubernetes adds it."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.admit_serviceaccount import (
    SERVICE_ACCOUNT_DIR,
    add_api_access,
    admit_service_account,
    api_access_volume,
    wants_token,
)
from corral.api.errors import NotFound


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "i"}], "containers": [{"name": "a"}, {"name": "b"}], **spec}}


def test_volume_is_kubernetes_projected_token_ca_and_namespace():
    vol = api_access_volume("kube-api-access-abcde")
    sources = vol["projected"]["sources"]
    assert vol["projected"]["defaultMode"] == 420
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"] == {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_every_container_mounts_it_read_only():
    pod = _pod()
    name = add_api_access(pod, suffix="xyz12")
    assert name == "kube-api-access-xyz12"
    assert [v["name"] for v in pod["spec"]["volumes"]] == [name]
    for c in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]:
        assert c["volumeMounts"] == [{"name": name, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}]


def test_not_added_twice_nor_over_a_users_own_mount():
    pod = _pod()
    add_api_access(pod)
    assert add_api_access(pod) is None and len(pod["spec"]["volumes"]) == 1
    own = {"spec": {"containers": [{"name": "a", "volumeMounts": [
        {"name": "mine", "mountPath": SERVICE_ACCOUNT_DIR + "/"}]}], "volumes": [{"name": "mine", "emptyDir": {}}]}}
    assert add_api_access(own) is None and len(own["spec"]["volumes"]) == 1


@pytest.mark.parametrize(("pod_says", "account_says", "expected"), [
    (None, None, True), (False, None, False), (None, False, False), (True, False, True), (False, True, False)])
def test_the_pods_choice_wins_over_its_accounts(pod_says: Any, account_says: Any, expected: bool):
    pod = _pod() if pod_says is None else _pod(automountServiceAccountToken=pod_says)
    account = {} if account_says is None else {"automountServiceAccountToken": account_says}
    assert wants_token(pod, account) is expected


class _Objects:
    def __init__(self, accounts: dict[str, dict[str, Any]]) -> None:
        self.accounts = accounts

    async def get(self, rt: Any, namespace: str, name: str) -> dict[str, Any]:
        if (namespace, name) not in self.accounts:
            raise NotFound(f'serviceaccounts "{name}" not found')
        return self.accounts[(namespace, name)]


class _Registry:
    def lookup(self, group: str, version: str, plural: str) -> str:
        return plural


async def test_admission_names_the_account_and_adds_the_volume_only_if_it_exists():
    objects = _Objects({("ns", "default"): {}, ("ns", "quiet"): {"automountServiceAccountToken": False}})
    pod = _pod()
    await admit_service_account(objects, _Registry(), "ns", pod)
    assert pod["spec"]["serviceAccountName"] == "default" and len(pod["spec"]["volumes"]) == 1
    quiet = _pod(serviceAccountName="quiet")
    await admit_service_account(objects, _Registry(), "ns", quiet)
    assert "volumes" not in quiet["spec"]
    missing = _pod(serviceAccountName="nobody")
    await admit_service_account(objects, _Registry(), "ns", missing)
    assert "volumes" not in missing["spec"]
