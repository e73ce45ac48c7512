"""The official `kubernetes` Python client against `corral server`."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from tests.conftest import CorralProcess, wait_for

ROOT_CA = "kube-root-ca.crt"
"""Published in every namespace by the root-CA controller, as in Kubernetes."""


def _cm(name: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data or {"k": "v"}}


def test_crud_roundtrip(k8s, namespace):
    core = client.CoreV1Api(k8s)
    created = core.create_namespaced_config_map(namespace, _cm("a", {"app": "x"}))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    got = core.read_namespaced_config_map("a", namespace)
    assert got.data == {"k": "v"}
    got.data = {"k": "w"}
    replaced = core.replace_namespaced_config_map("a", namespace, got)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    core.delete_namespaced_config_map("a", namespace)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("a", namespace)
    assert err.value.status == 404


def test_apps_crud_and_generation(k8s, namespace):
    apps = client.AppsV1Api(k8s)
    body = {
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}]}},
        },
    }
    dep = apps.create_namespaced_deployment(namespace, body)
    assert dep.metadata.generation == 1
    assert dep.spec.strategy.type == "RollingUpdate"  # defaulted
    assert dep.spec.template.spec.restart_policy == "Always"
    dep = apps.patch_namespaced_deployment("d", namespace, {"metadata": {"labels": {"x": "y"}}})
    assert dep.metadata.generation == 1  # metadata-only change
    dep = apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 4}})
    assert dep.metadata.generation == 2


def test_stale_update_conflicts(k8s, namespace):
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(namespace, _cm("c"))
    first = core.read_namespaced_config_map("c", namespace)
    second = core.read_namespaced_config_map("c", namespace)
    first.data = {"k": "1"}
    core.replace_namespaced_config_map("c", namespace, first)
    second.data = {"k": "2"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", namespace, second)
    assert err.value.status == 409
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "1"}


def test_create_existing_is_409_already_exists(k8s, namespace):
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(namespace, _cm("dup"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, _cm("dup"))
    assert err.value.status == 409 and "AlreadyExists" in err.value.body


def test_label_and_field_selectors(k8s, namespace):
    core = client.CoreV1Api(k8s)
    for i in range(6):
        core.create_namespaced_config_map(namespace, _cm(f"s{i}", {"tier": "a" if i % 2 else "b", "n": str(i)}))
    names = lambda items: sorted(i.metadata.name for i in items if i.metadata.name != ROOT_CA)  # noqa: E731
    assert names(core.list_namespaced_config_map(namespace, label_selector="tier=a").items) == ["s1", "s3", "s5"]
    assert names(core.list_namespaced_config_map(namespace, label_selector="tier!=a,n in (0,2)").items) == ["s0", "s2"]
    assert names(core.list_namespaced_config_map(namespace, label_selector="!missing,n notin (0,1,2,3)").items) == ["s4", "s5"]
    assert names(core.list_namespaced_config_map(namespace, field_selector="metadata.name=s2").items) == ["s2"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(namespace, label_selector="tier in (a")
    assert err.value.status == 400
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(namespace, field_selector="data.k=v")
    assert err.value.status == 400


def test_pagination_is_consistent(k8s, namespace):
    core = client.CoreV1Api(k8s)
    for i in range(25):
        core.create_namespaced_config_map(namespace, _cm(f"p{i:02d}"))
    seen, token, rvs, pages = [], None, set(), 0
    while True:
        page = core.list_namespaced_config_map(namespace, limit=10, _continue=token)
        pages += 1
        seen += [i.metadata.name for i in page.items if i.metadata.name != ROOT_CA]
        rvs.add(page.metadata.resource_version)
        if pages == 1:
            core.create_namespaced_config_map(namespace, _cm("p99-late"))  # must not appear mid-list
        token = page.metadata._continue
        if not token:
            break
    assert seen == [f"p{i:02d}" for i in range(25)]
    assert len(rvs) == 1


def test_watch_from_resource_version(k8s, namespace):
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(namespace, _cm("before"))
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    events: list[tuple[str, str]] = []
    w = watch.Watch()

    def run() -> None:
        for ev in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=20):
            events.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    core.create_namespaced_config_map(namespace, _cm("after"))
    core.patch_namespaced_config_map("after", namespace, {"data": {"k": "changed"}})
    core.delete_namespaced_config_map("after", namespace)
    t.join(20)
    assert events == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


def test_all_patch_kinds(k8s, namespace):
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    core.create_namespaced_config_map(namespace, _cm("m", data={"a": "1", "b": "2"}))
    merged = core.patch_namespaced_config_map("m", namespace, {"data": {"a": None, "c": "3"}})
    assert merged.data == {"b": "2", "c": "3"}
    jp = core.patch_namespaced_config_map("m", namespace, [{"op": "replace", "path": "/data/b", "value": "20"},
                                                           {"op": "add", "path": "/data/d", "value": "4"}])
    assert jp.data == {"b": "20", "c": "3", "d": "4"}
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("m", namespace, [{"op": "test", "path": "/data/b", "value": "nope"}])
    assert err.value.status == 422
    dep = {
        "metadata": {"name": "sp"},
        "spec": {"selector": {"matchLabels": {"app": "sp"}},
                 "template": {"metadata": {"labels": {"app": "sp"}},
                              "spec": {"containers": [{"name": "a", "image": "busybox", "command": ["true"]},
                                                      {"name": "b", "image": "busybox", "command": ["true"]}]}}},
    }
    apps.create_namespaced_deployment(namespace, dep)
    # The python client sends strategic merge patch for dict bodies on apps resources.
    patched = apps.patch_namespaced_deployment(
        "sp", namespace, {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox:2"}]}}}})
    containers = patched.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("a", "busybox"), ("b", "busybox:2")]
    assert containers[1].command == ["true"]


def test_server_side_apply(k8s, namespace):
    core = client.CoreV1Api(k8s)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "1", "y": "2"}}
    apply = "application/apply-patch+yaml"
    core.patch_namespaced_config_map("ssa", namespace, body, field_manager="tester", _content_type=apply)
    cm = core.read_namespaced_config_map("ssa", namespace)
    assert cm.data == {"x": "1", "y": "2"}
    assert any(m.manager == "tester" and m.operation == "Apply" for m in cm.metadata.managed_fields)
    # Another manager changing a field the first one owns conflicts unless forced.
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "9"}}
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("ssa", namespace, other, field_manager="intruder", _content_type=apply)
    assert err.value.status == 409 and "conflict" in err.value.body.lower()
    core.patch_namespaced_config_map("ssa", namespace, other, field_manager="intruder", force=True,
                                     _content_type=apply)
    assert core.read_namespaced_config_map("ssa", namespace).data == {"x": "9", "y": "2"}
    # Dropping a field from one's own applied config removes it.
    body["data"] = {"x": "9"}
    core.patch_namespaced_config_map("ssa", namespace, body, field_manager="tester", _content_type=apply)
    assert core.read_namespaced_config_map("ssa", namespace).data == {"x": "9"}


def test_bad_input_is_rejected_and_nothing_written(k8s, namespace):
    core = client.CoreV1Api(k8s)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, _cm("Bad_Name"))
    assert err.value.status == 422 and "metadata.name" in err.value.body
    with pytest.raises(ApiException) as err:
        client.AppsV1Api(k8s).create_namespaced_deployment(namespace, {
            "metadata": {"name": "neg"},
            "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "c"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    assert err.value.status == 422
    assert "spec.replicas" in err.value.body and "spec.template.metadata.labels" in err.value.body
    assert [i.metadata.name for i in core.list_namespaced_config_map(namespace).items if i.metadata.name != ROOT_CA] == []
    assert client.AppsV1Api(k8s).list_namespaced_deployment(namespace).items == []


def test_unauthenticated_is_401(api_server):
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(api_server.data_dir / "pki" / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{api_server.url}/api/v1/namespaces", context=ctx)
    assert err.value.code == 401
    req = urllib.request.Request(f"{api_server.url}/api/v1/namespaces", headers={"Authorization": "Bearer wrong"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=ctx)
    assert err.value.code == 401


@pytest.fixture
def small_history_server(tmp_path):
    db = tmp_path / "data" / "state.db"
    (tmp_path / "data").mkdir()
    proc = CorralProcess("server", tmp_path / "data", "--store", f"sqlite://{db}?history_limit=20")
    proc.wait_ready()
    yield proc
    proc.stop()


def test_expired_watch_is_410(small_history_server):
    from kubernetes import config

    conf = client.Configuration()
    config.load_kube_config(config_file=str(small_history_server.kubeconfig), client_configuration=conf)
    with client.ApiClient(conf) as api:
        core = client.CoreV1Api(api)
        first_rv = core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(200):
            core.create_namespaced_config_map("default", _cm(f"h{i}"))

        def compacted() -> bool:
            try:
                for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                              resource_version=first_rv, timeout_seconds=2):
                    pass
            except ApiException as exc:
                return exc.status == 410
            return False

        wait_for(compacted, timeout=20, message="a watch from a compacted revision to get 410")
