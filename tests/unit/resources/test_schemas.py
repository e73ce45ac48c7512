"""Kubernetes' list/patch semantics on our schemas, and manifests as the
Kubernetes docs show them passing strict checking."""

from __future__ import annotations

import pytest
import yaml

from corral.resources.schema_check import check_fields
from corral.resources.schemas import all_kind_schemas, kind_schema

POD = kind_schema("", "v1", "Pod")


@pytest.mark.parametrize(
    ("path", "merge_key", "strategy", "list_type", "keys"),
    [
        (["spec", "containers"], "name", "merge", "map", ("name",)),
        (["spec", "initContainers"], "name", "merge", "map", ("name",)),
        (["spec", "ephemeralContainers"], "name", "merge", "map", ("name",)),
        (["spec", "volumes"], "name", "merge,retainKeys", "map", ("name",)),
        (["spec", "imagePullSecrets"], "name", "merge", "map", ("name",)),
        (["spec", "containers", 0, "env"], "name", "merge", "map", ("name",)),
        (["spec", "containers", 0, "ports"], "containerPort", "merge", "map", ("containerPort", "protocol")),
        (["spec", "containers", 0, "volumeMounts"], "mountPath", "merge", "map", ("mountPath",)),
        (["spec", "tolerations"], "", "", "atomic", ()),
        (["spec", "topologySpreadConstraints"], "topologyKey", "merge", "map", ("topologyKey", "whenUnsatisfiable")),
        (["metadata", "finalizers"], "", "merge", "set", ()),
        (["metadata", "ownerReferences"], "uid", "merge", "map", ("uid",)),
        (["status", "conditions"], "type", "merge", "map", ("type",)),
        (["spec", "containers", 0, "command"], "", "", "atomic", ()),
    ],
)
def test_pod_list_semantics(path, merge_key, strategy, list_type, keys) -> None:
    node = POD.at(path)
    assert node is not None and node.type == "array"
    assert (node.merge_key, node.patch_strategy, node.list_type, node.list_map_keys) == (
        merge_key, strategy, list_type, keys,
    )


def test_other_kinds_list_semantics() -> None:
    svc = kind_schema("", "v1", "Service")
    ports = svc.at(["spec", "ports"])
    assert (ports.merge_key, ports.list_map_keys) == ("port", ("port", "protocol"))
    assert svc.at(["spec", "selector"]).map_type == "atomic"
    node = kind_schema("", "v1", "Node")
    assert node.at(["status", "addresses"]).merge_key == "type"
    assert node.at(["status", "conditions"]).merge_key == "type"
    assert node.at(["spec", "taints"]).list_type == "atomic"
    dep = kind_schema("apps", "v1", "Deployment")
    assert dep.at(["spec", "strategy"]).patch_strategy == "retainKeys"
    assert dep.at(["status", "conditions"]).merge_key == "type"
    assert dep.at(["spec", "selector"]).map_type == "atomic"
    assert dep.at(["spec", "template", "spec"]) is POD.at(["spec"])


def test_every_kind_has_type_meta_and_a_component_name() -> None:
    for (_group, version, kind), schema in all_kind_schemas().items():
        assert {"apiVersion", "kind", "metadata"} <= set(schema.properties), kind
        assert schema.ref.endswith(f".{version}.{kind}"), schema.ref


DOCS_MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels: {app: nginx}
spec:
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports: [{containerPort: 80}]
        resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: 0.5, memory: 128Mi}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: frontend, labels: {app: guestbook, tier: frontend}}
spec:
  replicas: 3
  selector: {matchLabels: {tier: frontend}}
  template:
    metadata: {labels: {tier: frontend}}
    spec:
      containers: [{name: php-redis, image: us-docker.pkg.dev/google-samples/containers/gke/gb-frontend:v5}]
---
apiVersion: v1
kind: Service
metadata: {name: my-service}
spec:
  type: NodePort
  selector: {app.kubernetes.io/name: MyApp}
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 9376, nodePort: 30007}]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: game-demo}
data: {player_initial_lives: "3", game.properties: "enemy.types=aliens\\n"}
binaryData: {blob: aGVsbG8=}
---
apiVersion: v1
kind: Secret
metadata: {name: secret-basic-auth}
type: kubernetes.io/basic-auth
stringData: {username: admin, password: t0p-Secret}
---
apiVersion: v1
kind: Namespace
metadata: {name: development, labels: {name: development}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: build-robot}
automountServiceAccountToken: false
imagePullSecrets: [{name: myregistrykey}]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: node-1, namespace: kube-node-lease}
spec: {holderIdentity: node-1, leaseDurationSeconds: 40, renewTime: "2024-05-01T10:00:00.123456Z"}
---
apiVersion: v1
kind: Endpoints
metadata: {name: my-service}
subsets:
- addresses: [{ip: 192.0.2.42, targetRef: {kind: Pod, name: p, namespace: default}}]
  ports: [{port: 9376, name: http}]
---
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}
spec:
  podCIDR: 198.18.1.0/24
  taints: [{key: node.kubernetes.io/unreachable, effect: NoExecute, timeAdded: "2024-05-01T10:00:00Z"}]
status:
  capacity: {cpu: "2", memory: 24Gi, pods: "110"}
  allocatable: {cpu: 1900m, memory: 23Gi, pods: 110}
  conditions: [{type: Ready, status: "True", reason: KubeletReady, lastHeartbeatTime: "2024-05-01T10:00:00Z"}]
  addresses: [{type: InternalIP, address: 127.0.0.1}, {type: Hostname, address: node-1}]
  daemonEndpoints: {kubeletEndpoint: {Port: 10250}}
  nodeInfo: {machineID: m, systemUUID: s, bootID: b, kernelVersion: "6.1", osImage: Debian,
             containerRuntimeVersion: "docker://20.10", kubeletVersion: v1.32.4, kubeProxyVersion: "",
             operatingSystem: linux, architecture: amd64}
---
apiVersion: v1
kind: Event
metadata: {name: p.17a, namespace: default}
involvedObject: {kind: Pod, name: p, namespace: default, uid: u, apiVersion: v1, fieldPath: "spec.containers{c}"}
reason: FailedScheduling
message: 0/3 nodes are available
type: Warning
count: 2
firstTimestamp: "2024-05-01T10:00:00Z"
lastTimestamp: "2024-05-01T10:01:00Z"
eventTime: "2024-05-01T10:00:00.000001Z"
source: {component: default-scheduler}
series: {count: 2, lastObservedTime: "2024-05-01T10:01:00.000000Z"}
reportingComponent: default-scheduler
reportingInstance: node-1
action: Scheduling
related: {kind: Node, name: node-1}
---
apiVersion: v1
kind: Binding
metadata: {name: p, namespace: default}
target: {apiVersion: v1, kind: Node, name: node-1}
---
apiVersion: policy/v1
kind: Eviction
metadata: {name: p, namespace: default}
deleteOptions: {gracePeriodSeconds: 30, propagationPolicy: Background}
---
apiVersion: autoscaling/v1
kind: Scale
metadata: {name: web, namespace: default}
spec: {replicas: 5}
status: {replicas: 3, selector: app=web}
"""


@pytest.mark.parametrize(
    "manifest", list(yaml.safe_load_all(DOCS_MANIFESTS)), ids=lambda m: m["kind"]
)
def test_docs_manifests_pass_strict_checking(manifest: dict) -> None:
    group, _, version = manifest["apiVersion"].rpartition("/")
    report = check_fields(manifest, kind_schema(group, version, manifest["kind"]))
    assert report.unknown == [] and report.type_errors == []


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no schema for kind Widget in example.com/v1"):
        kind_schema("example.com", "v1", "Widget")
