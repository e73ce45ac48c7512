"""Environment building and $(VAR) expansion."""

from __future__ import annotations

import pytest

from corral.agent.env import EnvBuilder, expand, expand_command
from corral.runtime.protocol import StartError


def test_expand():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("$(MISSING) $(A", env) == "$(MISSING) $(A"
    assert expand("cost $5", env) == "cost $5"


POD = {
    "metadata": {"name": "web-abc", "namespace": "default", "uid": "u1", "labels": {"app": "web"}},
    "spec": {"nodeName": "n1"},
}


async def test_build_env_values_and_field_refs():
    container = {
        "env": [
            {"name": "A", "value": "x"},
            {"name": "B", "value": "$(A)y"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ]
    }
    env = await EnvBuilder(client=None).build(
        POD, container, host_ip="127.0.0.1", pod_ip="127.0.0.2"
    )
    assert env == {
        "HOSTNAME": "web-abc",
        "A": "x",
        "B": "xy",
        "POD": "web-abc",
        "APP": "web",
        "IP": "127.0.0.2",
    }
    cmd = expand_command({"command": ["echo", "$(B)"], "args": ["$(POD)"]}, env)
    assert cmd["command"] == ["echo", "xy"] and cmd["args"] == ["web-abc"]


@pytest.mark.parametrize(
    ("var", "fragment"),
    [
        ({"value": "x"}, "env[0].name"),
        ({"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}, "spec.nope"),
        ({"name": "X", "valueFrom": {}}, "valueFrom"),
    ],
)
async def test_bad_env_is_a_config_error(var, fragment):
    with pytest.raises(StartError) as info:
        await EnvBuilder(client=None).build(POD, {"env": [var]}, host_ip="h", pod_ip="p")
    assert info.value.reason == "CreateContainerConfigError"
    assert fragment in info.value.message
