"""Message descriptors: the compact field notation and the table built from it.

Each descriptor module holds ``TABLES = {package: {message: {number: spec}}}``
where a spec is ``"<jsonName> <type> [flag]"``:

* type: a scalar (``string bytes bool int32 int64 uint32 uint64 double
  float``), a message (``Name`` in the same package or ``pkg.Name``),
  ``[]T`` for a repeated field, or ``map<K,V>`` (entries carry the key in
  field 1 and the value in field 2). ``raw`` is bytes handed over as-is to
  a well-known type's converter instead of base64.
* ``*``: a present zero value is kept. Set where Go uses a pointer (so
  ``replicas: 0`` differs from unset) or where the JSON tag has no
  ``omitempty``. Elsewhere Go cannot tell zero from unset, its protobuf
  encoder writes those zeros anyway, and JSON would omit them, so we drop them.
* ``inline``: the sub-message's fields belong to the parent object in JSON
  (Go ``json:",inline"``), e.g. a Volume's VolumeSource or a Probe's handler.

Messages are present-means-set: a sub-message that arrives, even empty, is
kept as ``{}`` (``emptyDir: {}`` selects a volume type).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from corral.api.protobuf.descriptors import ALL_TABLES

SCALARS = frozenset(
    {"string", "bytes", "raw", "bool", "int32", "int64", "uint32", "uint64", "double", "float"}
)

Tables = Mapping[str, Mapping[str, Mapping[int, str]]]


@dataclass(frozen=True, slots=True)
class Field:
    number: int
    json_name: str
    type: str  # a scalar name or a qualified message name; for maps, the value type
    key_type: str | None  # set only for map fields
    repeated: bool
    keep_zero: bool
    inline: bool

    @property
    def is_message(self) -> bool:
        return self.type not in SCALARS


Message = dict[int, Field]


def _qualify(type_name: str, package: str) -> str:
    if type_name in SCALARS or "." in type_name:
        return type_name
    return f"{package}.{type_name}"


def parse_spec(number: int, spec: str, package: str) -> Field:
    """Parse one field spec of the notation above; raises ValueError on a typo."""
    parts = spec.split()
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("*", "inline")):
        raise ValueError(f"bad field spec {number}: {spec!r}")
    json_name, type_text = parts[0], parts[1]
    flag = parts[2] if len(parts) == 3 else ""
    key_type = None
    repeated = False
    if type_text.startswith("map<") and type_text.endswith(">"):
        key_text, _, value_text = type_text[4:-1].partition(",")
        key_type = _qualify(key_text, package)
        type_text = value_text
    elif type_text.startswith("[]"):
        repeated = True
        type_text = type_text[2:]
    return Field(
        number=number,
        json_name=json_name,
        type=_qualify(type_text, package),
        key_type=key_type,
        repeated=repeated,
        keep_zero=flag == "*",
        inline=flag == "inline",
    )


def build_messages(tables: Iterable[Tables]) -> dict[str, Message]:
    """Merge descriptor tables into ``{qualified name: {number: Field}}``.

    Checks that every referenced message is defined, so a gap in the tables is
    found when the module loads rather than when a client sends that field.
    """
    messages: dict[str, Message] = {}
    for table in tables:
        for package, package_messages in table.items():
            for name, fields in package_messages.items():
                qualified = f"{package}.{name}"
                if qualified in messages:
                    raise ValueError(f"message {qualified} defined twice")
                messages[qualified] = {n: parse_spec(n, s, package) for n, s in fields.items()}
    for qualified, fields in messages.items():
        for field in fields.values():
            for ref in (field.type, field.key_type):
                if ref is not None and ref not in SCALARS and ref not in messages:
                    raise ValueError(f"{qualified}.{field.json_name} refers to unknown {ref}")
    return messages


MESSAGES: dict[str, Message] = build_messages(ALL_TABLES)

# Which generated message a runtime.Unknown's typeMeta names. DeleteOptions is
# accepted under every group version, as Kubernetes registers it in each.
_KINDS_BY_GROUP_VERSION: dict[str, tuple[str, tuple[str, ...]]] = {
    "v1": (
        "core.v1",
        (
            "Pod", "Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount",
            "PodTemplate", "ReplicationController", "Node", "Endpoints", "Event", "Binding",
            "ResourceQuota", "LimitRange", "PersistentVolume", "PersistentVolumeClaim",
        ),
    ),
    "apps/v1": (
        "apps.v1",
        ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "ControllerRevision"),
    ),
    "batch/v1": ("batch.v1", ("Job", "CronJob")),
    "coordination.k8s.io/v1": ("coordination.v1", ("Lease",)),
    "policy/v1": ("policy.v1", ("Eviction", "PodDisruptionBudget")),
    "autoscaling/v1": ("autoscaling.v1", ("Scale", "HorizontalPodAutoscaler")),
    "rbac.authorization.k8s.io/v1": (
        "rbac.v1",
        ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"),
    ),
    "scheduling.k8s.io/v1": ("scheduling.v1", ("PriorityClass",)),
    "certificates.k8s.io/v1": ("certificates.v1", ("CertificateSigningRequest",)),
    "networking.k8s.io/v1": ("networking.v1", ("Ingress", "IngressClass", "NetworkPolicy")),
    "discovery.k8s.io/v1": ("discovery.v1", ("EndpointSlice",)),
    "events.k8s.io/v1": ("events.v1", ("Event",)),
    "meta.k8s.io/v1": ("meta.v1", ()),
    "authorization.k8s.io/v1": (
        "authorization.v1",
        ("SelfSubjectAccessReview", "SubjectAccessReview", "SelfSubjectRulesReview"),
    ),
    "authentication.k8s.io/v1": ("authentication.v1", ("TokenRequest", "SelfSubjectReview")),
}


def _build_kinds() -> dict[tuple[str, str], str]:
    kinds: dict[tuple[str, str], str] = {}
    for group_version, (package, names) in _KINDS_BY_GROUP_VERSION.items():
        for name in names:
            kinds[(group_version, name)] = f"{package}.{name}"
        kinds[(group_version, "DeleteOptions")] = "meta.v1.DeleteOptions"
    for qualified in kinds.values():
        if qualified not in MESSAGES:
            raise ValueError(f"kind table names undefined message {qualified}")
    return kinds


KINDS: dict[tuple[str, str], str] = _build_kinds()
