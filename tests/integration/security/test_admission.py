"""ResourceQuota, LimitRange and Pod Security admission with the real kubectl."""

from __future__ import annotations

import asyncio
import time

import orjson

from conftest import Users


def _pod(name: str, **container: object) -> str:
    return orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                         "spec": {"containers": [{"name": "c", "image": "busybox", **container}]}}).decode()


async def test_quota_limits_counts_and_cpu(secure: Users) -> None:
    await secure.kubectl("create", "namespace", "q")
    await secure.kubectl("create", "quota", "small", "--hard=pods=2,requests.cpu=1,count/configmaps=3", "-n", "q")
    await secure.kubectl("apply", "-n", "q", "-f", "-", input=_pod("a", resources={"requests": {"cpu": "400m"}}))
    await secure.kubectl("apply", "-n", "q", "-f", "-", input=_pod("b", resources={"requests": {"cpu": "400m"}}))
    over_cpu = await secure.kubectl("apply", "-n", "q", "-f", "-", check=False,
                                    input=_pod("c", resources={"requests": {"cpu": "400m"}}))
    assert "exceeded quota: small, requested: pods=1,requests.cpu=400m, used: pods=2,requests.cpu=800m, " \
           "limited: pods=2,requests.cpu=1" in over_cpu.stderr
    for i in range(3):
        await secure.kubectl("create", "configmap", f"cm{i}", "-n", "q")
    fourth = await secure.kubectl("create", "configmap", "cm3", "-n", "q", check=False)
    assert "exceeded quota: small, requested: count/configmaps=1" in fourth.stderr
    # Deleting frees the slot once the quota is recounted.
    await secure.kubectl("delete", "pod", "b", "-n", "q", "--wait=false")
    deadline = time.monotonic() + 15
    while True:
        again = await secure.kubectl("apply", "-n", "q", "-f", "-", check=False,
                                     input=_pod("c", resources={"requests": {"cpu": "400m"}}))
        if again.returncode == 0:
            break
        assert time.monotonic() < deadline, again.stderr
        await asyncio.sleep(0.3)
    described = orjson.loads((await secure.kubectl("get", "quota", "small", "-n", "q", "-o", "json")).stdout)
    assert described["status"]["hard"]["pods"] == "2"


async def test_limit_range_defaults_and_bounds(secure: Users) -> None:
    await secure.kubectl("create", "namespace", "lr")
    limits = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bounds"},
              "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"},
                                   "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}}
    await secure.kubectl("apply", "-n", "lr", "-f", "-", input=orjson.dumps(limits).decode())
    await secure.kubectl("apply", "-n", "lr", "-f", "-", input=_pod("plain"))
    pod = orjson.loads((await secure.kubectl("get", "pod", "plain", "-n", "lr", "-o", "json")).stdout)
    res = pod["spec"]["containers"][0]["resources"]
    assert res["limits"] == {"cpu": "500m", "memory": "128Mi"}
    assert res["requests"] == {"cpu": "100m", "memory": "128Mi"}
    big = await secure.kubectl("apply", "-n", "lr", "-f", "-", check=False,
                               input=_pod("big", resources={"limits": {"cpu": "2"}}))
    assert 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2' in big.stderr


async def test_pod_security_levels(secure: Users) -> None:
    await secure.kubectl("create", "namespace", "locked")
    await secure.kubectl("label", "namespace", "locked", "pod-security.kubernetes.io/enforce=restricted")
    bad = await secure.kubectl("apply", "-n", "locked", "-f", "-", check=False,
                               input=_pod("root", securityContext={"privileged": True}))
    assert 'violates PodSecurity "restricted:latest": privileged (container "c" must not set ' \
           "securityContext.privileged=true)" in bad.stderr
    assert "allowPrivilegeEscalation != false" in bad.stderr
    good = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}
    await secure.kubectl("apply", "-n", "locked", "-f", "-", input=_pod("ok", securityContext=good))
    await secure.kubectl("label", "namespace", "locked", "pod-security.kubernetes.io/enforce=baseline", "--overwrite")
    host = await secure.kubectl("apply", "-n", "locked", "-f", "-", check=False,
                                input=_pod("host", ports=[{"containerPort": 80, "hostPort": 80}]))
    assert 'violates PodSecurity "baseline:latest": hostPort (container "c" uses hostPort 80)' in host.stderr
