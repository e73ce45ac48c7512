"""Authentication and RBAC against a real server with the real kubectl."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from conftest import USERS, Users

ALICE = USERS["alice"]


async def _eventually(check, timeout: float = 10.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.05)


async def _status(users: Users, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{users.server.url}{path}", headers=headers, ssl=False) as resp:
            return resp.status


async def test_anonymous_and_bad_tokens_get_401(secure: Users) -> None:
    assert await _status(secure, "/api/v1/namespaces/default/pods", None) == 401
    assert await _status(secure, "/api/v1/namespaces/default/pods", "not-a-token") == 401
    assert await _status(secure, "/api/v1/namespaces/default/pods", "a.b.c") == 401
    assert await _status(secure, "/healthz", None) == 200
    assert await _status(secure, "/version", None) == 200


async def _bind_view(users: Users) -> None:
    await users.kubectl("create", "namespace", "team-a")
    await users.kubectl("create", "namespace", "team-b")
    await users.kubectl("create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice", "-n", "team-a")

    async def visible() -> bool:
        r = await users.kubectl("auth", "can-i", "list", "pods", "-n", "team-a", token=ALICE, check=False)
        return r.stdout.strip() == "yes"

    await _eventually(visible, message="alice's view binding to take effect")


async def test_view_in_one_namespace(secure: Users) -> None:
    await _bind_view(secure)
    await secure.kubectl("create", "secret", "generic", "s", "--from-literal=k=v", "-n", "team-a")
    assert "No resources found" in (await secure.kubectl("get", "pods", "-n", "team-a", token=ALICE)).stderr
    denied = await secure.kubectl("get", "secrets", "-n", "team-a", token=ALICE, check=False)
    assert denied.returncode != 0
    assert ('secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" '
            'in the namespace "team-a"') in denied.stderr
    one = await secure.kubectl("get", "secret", "s", "-n", "team-a", token=ALICE, check=False)
    assert 'secrets "s" is forbidden: User "alice" cannot get resource "secrets"' in one.stderr
    write = await secure.kubectl("create", "configmap", "c", "--from-literal=a=b", "-n", "team-a",
                                 token=ALICE, check=False)
    assert 'cannot create resource "configmaps" in API group "" in the namespace "team-a"' in write.stderr
    other = await secure.kubectl("get", "pods", "-n", "team-b", token=ALICE, check=False)
    assert 'cannot list resource "pods" in API group "" in the namespace "team-b"' in other.stderr
    cluster = await secure.kubectl("get", "nodes", token=ALICE, check=False)
    assert 'cannot list resource "nodes" in API group "" at the cluster scope' in cluster.stderr


async def test_auth_can_i(secure: Users) -> None:
    await _bind_view(secure)

    async def can_i(*args: str, token: str | None = None) -> str:
        r = await secure.kubectl("auth", "can-i", *args, token=token, check=False)
        return r.stdout.strip()

    assert await can_i("*", "*") == "yes"  # the admin
    assert await can_i("get", "deployments.apps", "-n", "team-a", token=ALICE) == "yes"
    assert await can_i("get", "pods", "--subresource=log", "-n", "team-a", token=ALICE) == "yes"
    assert await can_i("get", "secrets", "-n", "team-a", token=ALICE) == "no"
    assert await can_i("delete", "pods", "-n", "team-a", token=ALICE) == "no"
    assert await can_i("list", "pods", "-n", "team-a", "--as", "alice") == "yes"
    assert await can_i("list", "pods", "-n", "team-b", "--as", "alice") == "no"
    listed = await secure.kubectl("auth", "can-i", "--list", "-n", "team-a", token=ALICE)
    assert "deployments.apps" in listed.stdout and "secrets" not in listed.stdout
    who = await secure.kubectl("auth", "whoami", token=ALICE)
    assert "alice" in who.stdout and "system:authenticated" in who.stdout


async def test_create_token_and_use_it(secure: Users) -> None:
    await secure.kubectl("create", "namespace", "team-a")
    await secure.kubectl("create", "serviceaccount", "bot", "-n", "team-a")
    token = (await secure.kubectl("create", "token", "bot", "-n", "team-a", "--duration=20m")).stdout.strip()
    assert token.count(".") == 2
    who = await secure.kubectl("auth", "whoami", token=token)
    assert "system:serviceaccount:team-a:bot" in who.stdout
    assert "system:serviceaccounts:team-a" in who.stdout
    denied = await secure.kubectl("get", "pods", "-n", "team-a", token=token, check=False)
    assert 'User "system:serviceaccount:team-a:bot" cannot list resource "pods"' in denied.stderr
    await secure.kubectl("create", "rolebinding", "bot-edit", "--clusterrole=edit",
                         "--serviceaccount=team-a:bot", "-n", "team-a")

    async def can_write() -> bool:
        r = await secure.kubectl("create", "configmap", "from-bot", "--from-literal=a=b", "-n", "team-a",
                                 token=token, check=False)
        return r.returncode == 0

    await _eventually(can_write, message="the bot's edit binding")
    short = await secure.kubectl("create", "token", "bot", "-n", "team-a", "--duration=1m", check=False)
    assert "may not specify a duration less than 10 minutes" in short.stderr
    missing = await secure.kubectl("create", "token", "nobody", "-n", "team-a", check=False)
    assert 'serviceaccounts "nobody" not found' in missing.stderr
    # A token dies with its ServiceAccount (after the short re-check interval).
    await secure.kubectl("delete", "serviceaccount", "bot", "-n", "team-a")
    await secure.kubectl("create", "serviceaccount", "bot", "-n", "team-a")

    async def revoked() -> bool:
        return await _status(secure, "/api/v1/namespaces/team-a/configmaps", token) == 401

    await _eventually(revoked, timeout=15, message="the old token to stop working")


async def test_no_escalation_through_bindings(secure: Users) -> None:
    await secure.kubectl("create", "namespace", "team-a")
    await secure.kubectl("create", "rolebinding", "alice-admin", "--clusterrole=admin", "--user=alice", "-n", "team-a")

    async def is_admin() -> bool:
        r = await secure.kubectl("auth", "can-i", "create", "rolebindings", "-n", "team-a", token=ALICE, check=False)
        return r.stdout.strip() == "yes"

    await _eventually(is_admin, message="alice's admin binding")
    ok = await secure.kubectl("create", "rolebinding", "bob-edit", "--clusterrole=edit", "--user=bob",
                              "-n", "team-a", token=ALICE, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = await secure.kubectl("create", "rolebinding", "alice-root", "--clusterrole=cluster-admin",
                               "--user=alice", "-n", "team-a", token=ALICE, check=False)
    assert "is attempting to grant RBAC permissions not currently held" in bad.stderr
    role = await secure.kubectl("create", "role", "nodes", "--verb=get", "--resource=nodes", "-n", "team-a",
                                token=ALICE, check=False)
    assert "forbidden" in role.stderr


async def test_aggregation_extends_view(secure: Users) -> None:
    manifest = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "widget-reader",
                     "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}],
    }
    await secure.kubectl("apply", "-f", "-", input=orjson.dumps(manifest).decode())

    async def aggregated() -> bool:
        out = await secure.kubectl("get", "clusterrole", "admin", "-o", "json")
        rules = orjson.loads(out.stdout).get("rules") or []
        return any("widgets" in r.get("resources", []) for r in rules)

    await _eventually(aggregated, message="widgets to reach admin through view and edit")
    review = {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "carol", "groups": ["system:authenticated"],
                 "resourceAttributes": {"group": "example.com", "resource": "widgets", "verb": "list"}},
    }

    async def carol_allowed() -> bool:
        out = await secure.kubectl("create", "--validate=false", "-f", "-", "-o", "json", input=orjson.dumps(review).decode())
        return bool(orjson.loads(out.stdout)["status"].get("allowed"))

    assert not await carol_allowed()
    await secure.kubectl("create", "clusterrolebinding", "carol-view", "--clusterrole=view", "--user=carol")
    await _eventually(carol_allowed, message="carol to read widgets through view")
