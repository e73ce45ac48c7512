"""Protobuf request bodies: real kubectl bodies against kubectl's own JSON, plus hand-made edge cases."""

from __future__ import annotations

import asyncio
import base64
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.api.errors import ApiError, BadRequest, RequestEntityTooLarge, UnsupportedMediaType
from corral.api.protobuf import MAX_BODY_BYTES, PROTOBUF_CONTENT_TYPE, decode_k8s_protobuf
from corral.api.protobuf.schema import KINDS, MESSAGES
from corral.api.protobuf.wellknown import go_duration
from corral.api.protobuf.wire import read_varint

# --- a tiny encoder, only for building test bodies --------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vi(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes, **extra: str) -> bytes:
    unknown = ld(1, ld(1, api_version) + ld(2, kind)) + ld(2, raw)
    if "encoding" in extra:
        unknown += ld(3, extra["encoding"])
    if "content_type" in extra:
        unknown += ld(4, extra["content_type"])
    return b"k8s\x00" + unknown


def meta(name: str) -> bytes:
    return ld(1, ld(1, name))


# --- a loopback stand-in for an API server that records what kubectl POSTs ---
#
# It serves version and legacy discovery for `kubectl create` and answers each
# POST with 201 and the decoded object, so the protobuf bodies kubectl really
# sends can be compared with the JSON it prints for --dry-run=client.

KUBECTL = "/usr/bin/kubectl"

# group version -> [(resource, kind, namespaced)]
_RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("namespaces", "Namespace", False), ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True), ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True), ("pods", "Pod", True),
        ("resourcequotas", "ResourceQuota", True), ("nodes", "Node", False),
    ],
    "apps/v1": [("deployments", "Deployment", True), ("replicasets", "ReplicaSet", True),
                ("daemonsets", "DaemonSet", True), ("statefulsets", "StatefulSet", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "coordination.k8s.io/v1": [("leases", "Lease", True)],
    "rbac.authorization.k8s.io/v1": [
        ("roles", "Role", True), ("clusterroles", "ClusterRole", False),
        ("rolebindings", "RoleBinding", True), ("clusterrolebindings", "ClusterRoleBinding", False),
    ],
    "scheduling.k8s.io/v1": [("priorityclasses", "PriorityClass", False)],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True)],
}


@dataclass
class Captured:
    content_type: str
    body: bytes
    decoded: dict[str, Any] | None
    error: str = ""


@dataclass
class CaptureServer:
    port: int = 0
    posts: list[Captured] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._api)
        app.router.add_get("/apis", self._apis)
        app.router.add_get("/api/{version}", self._resource_list)
        app.router.add_get("/apis/{group}/{version}", self._resource_list)
        app.router.add_post("/{tail:.*}", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

    async def _version(self, request: web.Request) -> web.Response:
        return self._json({"major": "1", "minor": "32", "gitVersion": "v1.32.4",
                           "platform": "linux/amd64"})

    async def _api(self, request: web.Request) -> web.Response:
        return self._json({"kind": "APIVersions", "versions": ["v1"],
                           "serverAddressByClientCIDRs": []})

    async def _apis(self, request: web.Request) -> web.Response:
        groups = []
        for gv in _RESOURCES:
            if gv == "v1":
                continue
            group, version = gv.split("/")
            entry = {"groupVersion": gv, "version": version}
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
        return self._json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def _resource_list(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group")
        gv = f"{group}/{request.match_info['version']}" if group else request.match_info["version"]
        if gv not in _RESOURCES:
            return self._json({"kind": "Status", "status": "Failure", "code": 404,
                               "reason": "NotFound", "message": "not found"}, 404)
        resources = [
            {"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
            for name, kind, namespaced in _RESOURCES[gv]
        ]
        return self._json({"kind": "APIResourceList", "groupVersion": gv, "resources": resources})

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        content_type = request.headers.get("Content-Type", "")
        try:
            if content_type.startswith(PROTOBUF_CONTENT_TYPE):
                decoded = decode_k8s_protobuf(body)
            else:
                decoded = orjson.loads(body)
        except ApiError as exc:
            self.posts.append(Captured(content_type, body, None, exc.message))
            return self._json(exc.status(), exc.code)
        self.posts.append(Captured(content_type, body, decoded))
        return self._json(decoded, 201)


async def run_kubectl(server: CaptureServer, cache_dir: Path, *args: str) -> tuple[int, str, str]:
    """Run the real kubectl against ``server``; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "KUBECONFIG": str(cache_dir / "no-kubeconfig"), "HOME": str(cache_dir)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--server", f"http://127.0.0.1:{server.port}", "--cache-dir", str(cache_dir),
        "--namespace", "default", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --- real kubectl -----------------------------------------------------------

needs_kubectl = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed")


@pytest.fixture(scope="session")
def kubectl_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubectl-cache")


@pytest.fixture
async def server() -> Any:
    srv = CaptureServer()
    await srv.start()
    yield srv
    await srv.stop()


def _config_files(tmp: Path) -> tuple[Path, Path]:
    text = tmp / "settings.ini"
    text.write_text("mode=fast\nretries=3\n")
    binary = tmp / "blob.bin"
    binary.write_bytes(bytes(range(256)))
    return text, binary


KUBECTL_CREATES: list[list[str]] = [
    ["deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=8080"],
    ["deployment", "pair", "--image=nginx:1.27", "--image=busybox:1.36", "--replicas=0"],
    ["namespace", "x"],
    ["configmap", "c", "--from-literal=a=b", "--from-file={text}", "--from-file={binary}"],
    ["secret", "generic", "s", "--from-literal=k=v", "--from-file={binary}"],
    ["secret", "docker-registry", "reg", "--docker-server=127.0.0.1:5000",
     "--docker-username=u", "--docker-password=p"],
    ["service", "clusterip", "s", "--tcp=80:8080"],
    ["service", "nodeport", "np", "--tcp=80:http"],
    ["service", "externalname", "ext", "--external-name=db.example.test"],
    ["serviceaccount", "sa"],
    ["job", "j", "--image=busybox", "--", "echo", "hi"],
    ["cronjob", "c", "--image=busybox", "--schedule=*/1 * * * *", "--", "date"],
    ["quota", "q", "--hard=pods=10,cpu=500m,memory=1Gi", "--scopes=NotTerminating"],
    ["priorityclass", "pc", "--value=1000", "--description=d", "--preemption-policy=Never"],
    ["role", "r", "--verb=get,list", "--resource=pods,deployments.apps"],
    ["clusterrole", "cr", "--verb=get", "--non-resource-url=/healthz"],
    ["rolebinding", "rb", "--role=r", "--user=u", "--serviceaccount=default:sa"],
    ["poddisruptionbudget", "pdb", "--selector=app=x", "--min-available=50%"],
    ["ingress", "ing", "--rule=foo.test/bar=svc1:8080,tls=secret1"],
]

# Kinds the brief names as sent in protobuf by kubectl create.
PROTOBUF_KINDS = {"Deployment", "Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount",
                  "Job", "CronJob", "ResourceQuota"}


@needs_kubectl
@pytest.mark.parametrize("create", KUBECTL_CREATES, ids=lambda a: "-".join(a[:2]))
async def test_kubectl_create_body_matches_kubectl_json(
    create: list[str], server: CaptureServer, kubectl_cache: Path, tmp_path: Path
) -> None:
    text, binary = _config_files(tmp_path)
    args = ["create", *(a.format(text=text, binary=binary) for a in create)]
    code, out, err = await run_kubectl(server, kubectl_cache, *args)
    assert code == 0, err
    assert len(server.posts) == 1
    post = server.posts[0]
    assert post.error == ""
    # Flags go before "--", after which kubectl passes everything to the container.
    split = args.index("--") if "--" in args else len(args)
    dry_run = [*args[:split], "--dry-run=client", "-o", "json", *args[split:]]
    code, oracle_text, err = await run_kubectl(server, kubectl_cache, *dry_run)
    assert code == 0, err
    assert len(server.posts) == 1, "a client-side dry run must not POST"
    oracle = orjson.loads(oracle_text)
    if oracle["kind"] in PROTOBUF_KINDS:
        assert post.content_type == PROTOBUF_CONTENT_TYPE
    assert post.decoded == oracle
    _assert_mutations_only_raise_api_errors(post.body)


def _assert_mutations_only_raise_api_errors(body: bytes) -> None:
    """Every truncation and a few hundred byte flips of a real body fail cleanly or decode."""
    for cut in range(len(body)):
        try:
            decode_k8s_protobuf(body[:cut])
        except (BadRequest, UnsupportedMediaType):
            pass
    rng = random.Random(len(body))
    for _ in range(300):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            decode_k8s_protobuf(bytes(mutated))
        except (BadRequest, UnsupportedMediaType):
            pass


@needs_kubectl
async def test_configmap_keeps_text_and_binary_files_apart(
    server: CaptureServer, kubectl_cache: Path, tmp_path: Path
) -> None:
    text, binary = _config_files(tmp_path)
    code, _, err = await run_kubectl(
        server, kubectl_cache, "create", "configmap", "files",
        f"--from-file={text}", f"--from-file={binary}",
    )
    assert code == 0, err
    obj = server.posts[0].decoded
    assert obj is not None
    assert obj["data"] == {"settings.ini": "mode=fast\nretries=3\n"}
    assert base64.b64decode(obj["binaryData"]["blob.bin"]) == bytes(range(256))


# --- semantics on hand-made bodies ------------------------------------------


def test_pointer_zero_is_kept_and_plain_zero_dropped() -> None:
    # DeploymentSpec: replicas (1) is *int32, minReadySeconds (5) a plain int32.
    spec = vi(1, 0) + vi(5, 0) + vi(7, 0)
    obj = decode_k8s_protobuf(envelope("apps/v1", "Deployment", meta("d") + ld(2, spec)))
    assert obj == {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "d"}, "spec": {"replicas": 0}}
    # A negative int32 travels as a ten-byte varint.
    assert len(vi(1, -1)) == 11
    obj = decode_k8s_protobuf(envelope("apps/v1", "Deployment", ld(2, vi(1, -1))))
    assert obj["spec"] == {"replicas": -1}


def test_inline_volume_source_and_probe_handler() -> None:
    volume = ld(1, "scratch") + ld(2, ld(2, b""))  # Volume{name, VolumeSource{emptyDir: {}}}
    port = vi(1, 1) + ld(3, "http")  # IntOrString string
    probe = ld(1, ld(2, ld(1, "/healthz") + ld(2, port))) + vi(2, 5)
    container = ld(1, "app") + ld(2, "img") + ld(10, probe)
    pod_spec = ld(1, volume) + ld(2, container)
    obj = decode_k8s_protobuf(envelope("v1", "Pod", meta("p") + ld(2, pod_spec)))
    assert obj["spec"] == {
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "containers": [{"name": "app", "image": "img", "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 5}}],
    }


def test_negative_int32_packed_int64_and_maps() -> None:
    packed = b"".join(varint(n) for n in (1000, 2000, -1))
    security = ld(4, packed) + vi(2, 0)  # supplementalGroups packed, runAsUser=0 kept
    pod_spec = ld(14, security) + ld(2, ld(1, "c")) + vi(5, -30 & ((1 << 64) - 1))
    labels = ld(11, ld(1, "app") + ld(2, "web")) + ld(11, ld(1, "tier"))
    obj = decode_k8s_protobuf(envelope("v1", "Pod", ld(1, ld(1, "p") + labels) + ld(2, pod_spec)))
    assert obj["metadata"]["labels"] == {"app": "web", "tier": ""}
    assert obj["spec"]["securityContext"] == {"supplementalGroups": [1000, 2000, -1], "runAsUser": 0}
    assert obj["spec"]["activeDeadlineSeconds"] == -30


def test_times_and_quantities() -> None:
    created = ld(8, vi(1, 1_700_000_000) + vi(2, 999))
    quota = ld(1, ld(1, "cpu") + ld(2, ld(1, "500m")))
    obj = decode_k8s_protobuf(
        envelope("v1", "ResourceQuota", ld(1, ld(1, "q") + created) + ld(2, quota))
    )
    assert obj["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert obj["spec"] == {"hard": {"cpu": "500m"}}
    lease = ld(3, vi(1, 0) + vi(2, 123_456_789)) + vi(2, 15)
    obj = decode_k8s_protobuf(envelope("coordination.k8s.io/v1", "Lease", meta("l") + ld(2, lease)))
    assert obj["spec"] == {"acquireTime": "1970-01-01T00:00:00.123456Z", "leaseDurationSeconds": 15}


def test_empty_time_is_null_like_kubectl_json() -> None:
    obj = decode_k8s_protobuf(envelope("v1", "Namespace", ld(1, ld(1, "n") + ld(8, b""))))
    assert obj["metadata"] == {"name": "n", "creationTimestamp": None}


def test_raw_extension_holds_json_or_a_nested_protobuf_object() -> None:
    inner = envelope("v1", "ConfigMap", meta("cm"))
    for raw, want in ((b'{"a": 1}', {"a": 1}),
                      (inner, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})):
        obj = decode_k8s_protobuf(
            envelope("apps/v1", "ControllerRevision", meta("r") + ld(2, ld(1, raw)) + vi(3, 0))
        )
        assert obj["data"] == want
        assert obj["revision"] == 0


def test_delete_options_under_any_group_version() -> None:
    body = vi(1, 0) + ld(4, "Foreground") + ld(5, "All")
    for group_version in ("v1", "apps/v1", "meta.k8s.io/v1"):
        obj = decode_k8s_protobuf(envelope(group_version, "DeleteOptions", body))
        assert obj == {"apiVersion": group_version, "kind": "DeleteOptions",
                       "gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
                       "dryRun": ["All"]}


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(0, "0s"), (1, "1ns"), (1100, "1.1µs"), (100_000_000, "100ms"), (1_500_000_000, "1.5s"),
     (90 * 60 * 10**9, "1h30m0s"), (-2 * 10**9, "-2s"), (3_723_000_000_001, "1h2m3.000000001s")],
)
def test_go_duration(nanoseconds: int, text: str) -> None:
    assert go_duration(nanoseconds) == text


def encode(message: str, obj: dict[str, Any]) -> bytes:
    """Encode a JSON-shaped object with the descriptor tables (only for round trips)."""
    out = b""
    for number, desc in sorted(MESSAGES[message].items()):
        if desc.inline:
            sub = encode(desc.type, obj)
            out += ld(number, sub) if sub else b""
        elif desc.json_name not in obj:
            continue
        elif desc.key_type is not None:
            for key, value in obj[desc.json_name].items():
                out += ld(number, ld(1, key) + _encode_value(2, desc.type, value))
        elif desc.repeated:
            out += b"".join(_encode_value(number, desc.type, v) for v in obj[desc.json_name])
        else:
            out += _encode_value(number, desc.type, obj[desc.json_name])
    return out


def _encode_value(number: int, type_name: str, value: Any) -> bytes:
    if type_name == "string":
        return ld(number, value)
    if type_name in ("int32", "int64", "bool"):
        return vi(number, int(value))
    if type_name == "resource.Quantity":
        return ld(number, ld(1, value))
    if type_name == "intstr.IntOrString":
        return ld(number, vi(1, 1) + ld(3, value) if isinstance(value, str) else vi(1, 0) + vi(2, value))
    return ld(number, encode(type_name, value))


RICH_POD: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {
    "name": "p", "namespace": "default", "labels": {"run": "p"}, "annotations": {"a": ""},
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                         "uid": "u-1", "controller": True, "blockOwnerDeletion": False}],
    "deletionGracePeriodSeconds": 0}, "spec": {
    "volumes": [
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "mem", "emptyDir": {}},
        {"name": "conf", "configMap": {"name": "c", "defaultMode": 0,
                                       "items": [{"key": "a", "path": "a.txt", "mode": 420}]}},
        {"name": "sec", "secret": {"secretName": "s", "optional": False}},
        {"name": "host", "hostPath": {"path": "/tmp", "type": "Directory"}},
        {"name": "claim", "persistentVolumeClaim": {"claimName": "pvc", "readOnly": True}},
        {"name": "proj", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        ]}},
        {"name": "dapi", "downwardAPI": {"items": [{"path": "cpu", "resourceFieldRef": {
            "containerName": "p", "resource": "limits.cpu", "divisor": "1m"}}]}},
    ],
    "initContainers": [{"name": "init", "image": "busybox", "restartPolicy": "Always"}],
    "containers": [{
        "name": "p", "image": "busybox:1.36", "command": ["sh", "-c"], "args": ["sleep 1"],
        "env": [{"name": "A", "value": "1"},
                {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k",
                                                              "optional": True}}}],
        "envFrom": [{"prefix": "X_", "configMapRef": {"name": "c"}}],
        "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "128Mi"}},
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch", "subPath": "x"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http",
                                      "httpHeaders": [{"name": "X", "value": "y"}]},
                          "periodSeconds": 5},
        "readinessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 1},
        "startupProbe": {"grpc": {"port": 9000, "service": ""}},
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}},
                      "postStart": {"exec": {"command": ["echo"]}}},
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "privileged": False,
                            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }],
    "securityContext": {"fsGroup": 2000, "supplementalGroups": [1, 2],
                        "sysctls": [{"name": "net.ipv4.ip_forward", "value": "1"}]},
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "preference": {
                "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"run": "p"}},
                                                "topologyKey": "kubernetes.io/hostname"}}]},
    },
    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                     "effect": "NoExecute", "tolerationSeconds": 300}, {"operator": "Exists"}],
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "minDomains": 2,
                                   "whenUnsatisfiable": "DoNotSchedule"}],
    "nodeSelector": {"disk": "ssd"}, "priority": 0, "terminationGracePeriodSeconds": 0,
    "enableServiceLinks": False, "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["me"]}],
    "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}, "os": {"name": "linux"},
}, "status": {"phase": "Running", "podIP": "198.18.0.5",
              "conditions": [{"type": "Ready", "status": "True",
                              "lastTransitionTime": "2024-05-01T12:00:00Z"}]}}


def test_rich_pod_round_trips_through_the_tables() -> None:
    obj = {k: v for k, v in RICH_POD.items() if k not in ("apiVersion", "kind")}
    obj["status"] = {k: v for k, v in obj["status"].items() if k != "conditions"}
    # The status arrives in two pieces; protobuf merges repeated occurrences of a message.
    condition = ld(1, "Ready") + ld(2, "True") + ld(4, vi(1, 1_714_564_800))
    raw = encode("core.v1.Pod", obj) + ld(3, ld(2, condition))
    body = envelope("v1", "Pod", raw)
    assert decode_k8s_protobuf(body) == RICH_POD
    _assert_mutations_only_raise_api_errors(body)


# --- errors ---------------------------------------------------------------


def _error(body: bytes) -> ApiError:
    with pytest.raises(ApiError) as info:
        decode_k8s_protobuf(body)
    return info.value


def test_unknown_field_names_message_and_number() -> None:
    container = ld(1, "app") + ld(2, "img") + ld(999, b"x")
    err = _error(envelope("v1", "Pod", meta("p") + ld(2, ld(2, container))))
    assert isinstance(err, BadRequest)
    assert "core.v1.Container" in err.message and "999" in err.message


def test_wrong_wire_type_names_the_field() -> None:
    err = _error(envelope("apps/v1", "Deployment", meta("d") + ld(2, ld(1, b"3"))))
    assert isinstance(err, BadRequest)
    assert "apps.v1.DeploymentSpec.replicas" in err.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [(b"{}", "magic"), (b"k8s\x00\x0a", "truncated varint"), (b"k8s\x00" + b"\xff" * 11, "varint"),
     (b"k8s\x00\x0a\x05ab", "claims 5 bytes"), (b"k8s\x00\x0b", "wire type 3"),
     (envelope("", "Pod", b""), "apiVersion and kind"),
     (envelope("v1", "Pod", ld(1, ld(1, b"\xff\xfe"))), "UTF-8"),
     (envelope("apps/v1", "Deployment", ld(2, ld(4, ld(2, ld(1, vi(1, 7)))))), "IntOrString")],
)
def test_malformed_bodies_are_bad_requests(body: bytes, fragment: str) -> None:
    err = _error(body)
    assert isinstance(err, BadRequest)
    assert fragment in err.message


@pytest.mark.parametrize(
    "body",
    [envelope("example.com/v1", "Widget", b""), envelope("v1", "Pod", b"", encoding="gzip"),
     envelope("v1", "Pod", b"", content_type="application/cbor")],
)
def test_unreadable_kinds_and_encodings_are_unsupported_media(body: bytes) -> None:
    assert isinstance(_error(body), UnsupportedMediaType)


def test_depth_is_bounded() -> None:
    body = envelope("v1", "ConfigMap", meta("leaf"))
    for _ in range(60):
        body = envelope("apps/v1", "ControllerRevision", ld(2, ld(1, body)))
    err = _error(body)
    assert isinstance(err, BadRequest)
    assert "nested deeper" in err.message


def test_size_is_bounded() -> None:
    body = envelope("v1", "ConfigMap", ld(2, ld(1, "k") + ld(2, "x" * MAX_BODY_BYTES)))
    assert isinstance(_error(body), RequestEntityTooLarge)


def test_every_kind_has_a_descriptor() -> None:
    assert KINDS[("apps/v1", "Deployment")] == "apps.v1.Deployment"
    for message in KINDS.values():
        assert message in MESSAGES


def test_read_varint_rejects_an_eleventh_byte() -> None:
    with pytest.raises(BadRequest):
        read_varint(memoryview(b"\x80" * 9 + b"\x02"), 0)


# --- fuzz -------------------------------------------------------------------

_fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_fuzz
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_api_errors(data: bytes) -> None:
    for body in (data, b"k8s\x00" + data, envelope("apps/v1", "Deployment", data)):
        try:
            decode_k8s_protobuf(body)
        except (BadRequest, UnsupportedMediaType):
            pass


@_fuzz
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 5), st.binary(max_size=20)),
                max_size=12))
def test_random_well_formed_fields_only_raise_api_errors(
    fields: list[tuple[int, int, bytes]]
) -> None:
    raw = b""
    for number, wire_type, payload in fields:
        if wire_type == 2:
            raw += ld(number, payload)
        elif wire_type == 0:
            raw += vi(number, int.from_bytes(payload[:8] or b"\0", "little"))
        else:
            raw += varint(number << 3 | wire_type) + payload
    for kind in (("v1", "Pod"), ("apps/v1", "Deployment"), ("v1", "Service")):
        try:
            decode_k8s_protobuf(envelope(*kind, ld(2, raw)))
        except (BadRequest, UnsupportedMediaType):
            pass
