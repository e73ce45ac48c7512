"""`corral server --api-workers 3`: three worker processes serve one port
and one store, which the server process owns. Real processes, real TLS,
real kubectl and the kubernetes client."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import CorralProcess, Kubectl, wait_for

from fixtures.api_workers import worker_pids

WORKERS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralProcess]:
    proc = CorralProcess("server", tmp_path_factory.mktemp("workers") / "data", "--api-workers", str(WORKERS))
    try:
        proc.wait_ready()
        wait_for(lambda: len(worker_pids(proc.data_dir)) == WORKERS, 30, message="the API workers")
        yield proc
    finally:
        proc.stop()
    wait_for(lambda: not worker_pids(proc.data_dir), 15, message="the workers to exit with the server")


@pytest.fixture(scope="module")
def kctl(server: CorralProcess, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


class Api:
    """A new TLS connection per request, so the kernel picks a process each time."""

    def __init__(self, server: CorralProcess) -> None:
        self.port, self.token = server.port, server.token()
        self.tls = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))

    def __call__(self, method: str, path: str, body: object = None, *, raw: bytes | None = None,
                 content_type: str = "application/json") -> tuple[int, dict]:
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.tls, timeout=30)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            connection.request(method, path, body=data, headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": content_type})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()


@pytest.fixture(scope="module")
def api(server: CorralProcess) -> Api:
    return Api(server)


@pytest.fixture
def ns(api: Api) -> str:
    name = f"w-{uuid.uuid4().hex[:8]}"
    status, _ = api("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201
    return name


def configmap(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_every_process_answers_and_all_see_one_store(server: CorralProcess, api: Api, ns: str) -> None:
    names = [f"cm-{i}" for i in range(60)]
    for name in names:
        status, body = api("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(name, k=name))
        assert status == 201, body
    # Each worker audits what it served into its own file; the server
    # process, which owns the store, leaves the port to them.
    def served(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines()  # the controllers come over a Unix socket
                if f"/namespaces/{ns}/configmaps" in line and '"sourceIPs":["127.0.0.1"]' in line]

    for i in range(1, WORKERS + 1):  # audit events reach the file in batches, within ~0.25 s
        wait_for(lambda i=i: served(server.data_dir / f"audit.worker{i}.log"), 10,
                 message=f"worker {i} serving some of 60 new connections")
    assert not served(server.data_dir / "audit.log")
    # Revisions are one sequence, whichever process wrote.
    status, listing = api("GET", f"/api/v1/namespaces/{ns}/configmaps")
    assert status == 200
    items = [i for i in listing["items"] if i["metadata"]["name"].startswith("cm-")]
    assert sorted(i["metadata"]["name"] for i in items) == sorted(names)
    revisions = [int(i["metadata"]["resourceVersion"]) for i in items]
    assert len(set(revisions)) == len(revisions)
    assert int(listing["metadata"]["resourceVersion"]) >= max(revisions)


def test_a_watch_on_one_process_sees_writes_made_through_the_others(api: Api, ns: str,
                                                                    server: CorralProcess) -> None:
    from kubernetes import client, config, watch

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(server.kubeconfig), client_configuration=configuration)
    core = client.CoreV1Api(client.ApiClient(configuration))
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    seen: list[str] = []
    done = threading.Event()

    def watch_them() -> None:
        for event in watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=rv,
                                          timeout_seconds=30):
            seen.append(f"{event['type']} {event['object'].metadata.name}")
            if len(seen) == 40:
                break
        done.set()

    watcher = threading.Thread(target=watch_them, daemon=True)
    watcher.start()
    for i in range(20):
        assert api("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(f"w{i}"))[0] == 201
    for i in range(20):
        assert api("DELETE", f"/api/v1/namespaces/{ns}/configmaps/w{i}")[0] == 200
    assert done.wait(30), seen
    assert seen == [f"ADDED w{i}" for i in range(20)] + [f"DELETED w{i}" for i in range(20)]


def test_conflicts_and_bad_input_are_the_same_through_every_process(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    status, created = api("POST", path, configmap("c", a="1"))
    assert status == 201
    stale = created["metadata"]["resourceVersion"]
    assert api("PUT", f"{path}/c", {**configmap("c", a="2"), "metadata": {
        "name": "c", "resourceVersion": stale}})[0] == 200
    for _ in range(12):  # enough new connections to reach every process
        status, body = api("PUT", f"{path}/c", {**configmap("c", a="3"), "metadata": {
            "name": "c", "resourceVersion": stale}})
        assert (status, body["reason"]) == (409, "Conflict"), body
        status, body = api("POST", path, raw=b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {')
        assert (status, body["kind"]) == (400, "Status"), body
        status, body = api("POST", path, configmap("Bad_Name"))
        assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name", body
        status, body = api("POST", path, configmap("c"))
        assert (status, body["reason"]) == (409, "AlreadyExists"), body
    status, listing = api("GET", path)
    assert {i["metadata"]["name"] for i in listing["items"]} - {"kube-root-ca.crt"} == {"c"}  # nothing half-written
    assert api("GET", f"{path}/c")[1]["data"] == {"a": "2"}


def test_kubectl_works_across_the_processes(kctl: Kubectl, ns: str) -> None:
    for i in range(6):
        kctl("-n", ns, "create", "configmap", f"k{i}", f"--from-literal=i={i}")  # protobuf bodies
    out = kctl("-n", ns, "get", "configmaps", "-o", "name")
    assert {f"configmap/k{i}" for i in range(6)} <= set(out.split())
    kctl("-n", ns, "create", "deployment", "web", "--image=busybox", "--replicas=2")
    kctl("-n", ns, "scale", "deployment", "web", "--replicas=4")
    assert kctl("-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}") == "4"


def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(server: CorralProcess, api: Api,
                                                                  ns: str) -> None:
    before = worker_pids(server.data_dir)
    victim = before[1]
    os.kill(victim, signal.SIGKILL)
    # New connections go to the listeners still open; a request caught in
    # the dead one's accept queue is reset, which a client retries.
    ok = 0
    for i in range(30):
        try:
            status, _ = api("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(f"k{i}"))
        except (ConnectionError, ssl.SSLError, http.client.RemoteDisconnected):
            continue
        ok += status == 201
    assert ok >= 25
    replaced = wait_for(lambda: (p := worker_pids(server.data_dir)).get(1) not in (None, victim) and p, 20,
                        message="worker 1 to be restarted")
    assert replaced[2] == before[2]
    for i in range(30, 45):
        assert api("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(f"k{i}"))[0] == 201
    log = server.log_path.read_text(errors="replace")
    assert f"API worker 1 (pid {victim}) exited" in log and "restarting" in log


def test_workers_exit_when_their_server_is_killed(tmp_path: Path) -> None:
    proc = CorralProcess("server", tmp_path / "data", "--api-workers", "2")
    try:
        proc.wait_ready()
        wait_for(lambda: len(worker_pids(proc.data_dir)) == 2, 30, message="the API workers")
        proc.stop(signal.SIGKILL)  # no chance to stop them: they notice the store socket close
        wait_for(lambda: not worker_pids(proc.data_dir), 15, message="the orphaned workers to exit")
    finally:
        proc.stop()
        for pid in worker_pids(proc.data_dir).values():
            os.kill(pid, signal.SIGKILL)


def test_api_workers_must_be_a_positive_count(tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import CORRAL

    result = subprocess.run([*CORRAL, "server", "--data-dir", str(tmp_path), "--api-workers", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--api-workers" in result.stderr and "0" in result.stderr


def service(name: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], **spec}}


def test_concurrent_service_creates_never_share_an_address_or_port(api: Api, ns: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = f"/api/v1/namespaces/{ns}/services"
    with ThreadPoolExecutor(16) as pool:  # new connections: spread over every process
        results = list(pool.map(lambda i: api("POST", path, service(f"s{i}", type="NodePort")), range(40)))
    assert [status for status, _ in results] == [201] * 40, [b for s, b in results if s != 201][:1]
    ips = [body["spec"]["clusterIP"] for _, body in results]
    ports = [body["spec"]["ports"][0]["nodePort"] for _, body in results]
    assert len(set(ips)) == 40, sorted(ips)
    assert len(set(ports)) == 40, sorted(ports)


def test_a_deleted_services_address_is_free_at_once_and_a_dry_run_claims_nothing(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/services"
    status, first = api("POST", path, service("first"))
    assert status == 201
    ip = first["spec"]["clusterIP"]
    status, body = api("POST", path, service("second", clusterIP=ip))
    assert status == 422 and "already allocated" in body["message"], body
    assert api("DELETE", f"{path}/first")[0] == 200
    status, body = api("POST", f"{path}?dryRun=All", service("dry", clusterIP=ip))
    assert status == 201, body
    status, body = api("POST", path, service("second", clusterIP=ip))
    assert status == 201 and body["spec"]["clusterIP"] == ip, body


def test_the_store_and_component_sockets_are_only_for_the_servers_user(server: CorralProcess) -> None:
    sockets = [server.data_dir / "store.sock"] + [server.data_dir / f"api.worker{i}.sock"
                                                   for i in range(1, WORKERS + 1)]
    for path in sockets:
        assert path.is_socket(), path
        assert path.stat().st_mode & 0o777 == 0o600, (path, oct(path.stat().st_mode))
    assert server.data_dir.stat().st_mode & 0o077 == 0
