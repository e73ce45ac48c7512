"""Defaults and validation of a PodSpec, shared by Pods and every pod template.

A Deployment's template and a Pod must default identically, or the
Deployment controller would see every Pod it creates as drifted from its
template; so both go through :func:`default_pod_spec`.
"""

from __future__ import annotations

from typing import Any

from corral.resources import validation as v
from corral.resources.quantity import QuantityError, parse_quantity
from corral.resources.tables import as_dict, as_list
from corral.resources.types import Obj

Causes = v.Causes

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
# Sources whose files get a default mode of 0644, as Kubernetes defaults them.
_MODE_SOURCES = ("configMap", "secret", "projected", "downwardAPI")

# --- defaults ------------------------------------------------------------------


def default_pull_policy(image: str) -> str:
    """Always for ``:latest`` or an untagged image, IfNotPresent for a tag or digest."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def default_container(c: Any) -> None:
    if not isinstance(c, dict):
        return
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if isinstance(c.get("image"), str) and not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = default_pull_policy(c["image"])
    resources = c.setdefault("resources", {})
    if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
        requests = resources.setdefault("requests", {})
        if isinstance(requests, dict):
            for name, value in resources["limits"].items():
                requests.setdefault(name, value)
    for port in as_list(c.get("ports")):
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in as_list(c.get("env")):
        field_ref = v_get(env, "valueFrom", "fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(name))


def _default_volume(vol: Any) -> None:
    if not isinstance(vol, dict):
        return
    if set(vol) <= {"name"}:
        vol["emptyDir"] = {}
    for source in _MODE_SOURCES:
        if isinstance(vol.get(source), dict):
            vol[source].setdefault("defaultMode", 420)
    if isinstance(vol.get("hostPath"), dict):
        vol["hostPath"].setdefault("type", "")


def default_pod_spec(spec: Any) -> None:
    """Defaults Kubernetes applies to every PodSpec, template or not."""
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    host_network = spec.get("hostNetwork") is True
    for key in ("initContainers", "containers"):
        for c in as_list(spec.get(key)):
            default_container(c)
            if host_network and isinstance(c, dict):
                for port in as_list(c.get("ports")):
                    if isinstance(port, dict) and "containerPort" in port:
                        port.setdefault("hostPort", port["containerPort"])
    for vol in as_list(spec.get("volumes")):
        _default_volume(vol)


def default_pod_template(template: Any) -> None:
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        default_pod_spec(template.get("spec"))


def v_get(obj: Any, *path: str) -> Any:
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


# --- validation ------------------------------------------------------------------


def _validate_ports(ports: Any, path: str) -> Causes:
    causes: Causes = []
    names: set[str] = set()
    for i, port in enumerate(as_list(ports)):
        p = f"{path}[{i}]"
        if not isinstance(port, dict):
            causes.append(v.invalid(p, port, "must be an object"))
            continue
        if port.get("containerPort") is None:
            causes.append(v.required(f"{p}.containerPort"))
        else:
            causes += v.port_number(f"{p}.containerPort", port["containerPort"])
        if port.get("hostPort") not in (None, 0):
            causes += v.port_number(f"{p}.hostPort", port["hostPort"])
        causes += v.protocol(f"{p}.protocol", port.get("protocol"))
        name = port.get("name")
        if isinstance(name, str) and name:
            causes += v.check(f"{p}.name", name, v.iana_svc_name_errors(name))
            if name in names:
                causes.append(v.duplicate(f"{p}.name", name))
            names.add(name)
        elif name:
            causes.append(v.invalid(f"{p}.name", name, "must be a string"))
    return causes


def _validate_env(env: Any, path: str) -> Causes:
    causes: Causes = []
    for i, var in enumerate(as_list(env)):
        p = f"{path}[{i}]"
        if not isinstance(var, dict):
            causes.append(v.invalid(p, var, "must be an object"))
            continue
        name = var.get("name")
        if not name:
            causes.append(v.required(f"{p}.name"))
        else:
            causes += v.check(f"{p}.name", name, v.env_name_errors(str(name)))
        source = var.get("valueFrom")
        if source is None:
            continue
        if var.get("value"):
            causes.append(v.invalid(f"{p}.valueFrom", "",
                                    "may not be specified when `value` is not empty"))
        given = [k for k in ENV_SOURCES if isinstance(source, dict) and source.get(k)]
        if len(given) > 1:
            causes.append(v.invalid(f"{p}.valueFrom", "",
                                    "may not have more than one field specified at a time"))
        elif not given:
            causes.append(v.invalid(f"{p}.valueFrom", "", "must specify one of: `fieldRef`, "
                                    "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
    return causes


def _resource_name_errors(name: str) -> list[str]:
    if name in STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-"):
        return []
    if "/" not in name:
        return ["must be a standard resource type or fully qualified"]
    return v.qualified_name_errors(name)


def _validate_resources(res: Any, path: str) -> Causes:
    if res is None:
        return []
    if not isinstance(res, dict):
        return [v.invalid(path, res, "must be an object")]
    causes: Causes = []
    parsed: dict[str, dict[str, Any]] = {"limits": {}, "requests": {}}
    for kind in ("limits", "requests"):
        for name, value in as_dict(res.get(kind)).items():
            p = f"{path}.{kind}[{name}]"
            causes += v.check(p, name, _resource_name_errors(str(name)))
            try:
                parsed[kind][name] = parse_quantity(value)
            except QuantityError as exc:
                causes.append(v.invalid(p, value, str(exc)))
                continue
            if parsed[kind][name] < 0:
                causes.append(v.invalid(p, value, "must be greater than or equal to 0"))
    for name, req in parsed["requests"].items():
        lim = parsed["limits"].get(name)
        if lim is None:
            continue
        value = res["requests"][name]
        limit_text = res["limits"][name]
        if "/" in name and req != lim:
            causes.append(v.invalid(f"{path}.requests[{name}]", str(value),
                                    f"must be equal to {name} limit of {limit_text}"))
        elif req > lim:
            causes.append(v.invalid(f"{path}.requests[{name}]", str(value),
                                    f"must be less than or equal to {name} limit of {limit_text}"))
    return causes


def _validate_probe(probe: Any, path: str, liveness_like: bool) -> Causes:
    if probe is None:
        return []
    if not isinstance(probe, dict):
        return [v.invalid(path, probe, "must be an object")]
    handlers = [h for h in PROBE_HANDLERS if probe.get(h) is not None]
    causes: Causes = []
    if not handlers:
        causes.append(v.required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        causes.append(v.forbidden(f"{path}.{handlers[1]}", "may not specify more than 1 handler type"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds",
                "successThreshold", "failureThreshold"):
        causes += v.non_negative(f"{path}.{key}", probe.get(key))
    if liveness_like and probe.get("successThreshold") not in (None, 1):
        causes.append(v.invalid(f"{path}.successThreshold", probe["successThreshold"], "must be 1"))
    for handler in ("httpGet", "tcpSocket"):
        port = v_get(probe, handler, "port")
        if isinstance(port, str):
            causes += v.check(f"{path}.{handler}.port", port, v.iana_svc_name_errors(port))
        elif handler in probe:
            causes += v.port_number(f"{path}.{handler}.port", port)
    return causes


def _validate_mounts(mounts: Any, path: str, volumes: set[str]) -> Causes:
    causes: Causes = []
    seen: set[str] = set()
    for i, m in enumerate(as_list(mounts)):
        p = f"{path}[{i}]"
        if not isinstance(m, dict):
            causes.append(v.invalid(p, m, "must be an object"))
            continue
        name, mount_path = m.get("name"), m.get("mountPath")
        if not name:
            causes.append(v.required(f"{p}.name"))
        elif not isinstance(name, str) or name not in volumes:
            causes.append(v.not_found(f"{p}.name", name))
        if not mount_path:
            causes.append(v.required(f"{p}.mountPath"))
        elif not isinstance(mount_path, str):
            causes.append(v.invalid(f"{p}.mountPath", mount_path, "must be a string"))
        elif mount_path in seen:
            causes.append(v.invalid(f"{p}.mountPath", mount_path, "must be unique"))
        else:
            seen.add(mount_path)
    return causes


def validate_container(c: Any, path: str, volumes: set[str], is_pod: bool) -> Causes:
    if not isinstance(c, dict):
        return [v.invalid(path, c, "must be an object")]
    causes = v.check_name(f"{path}.name", c.get("name"), "label")
    image = c.get("image")
    if not image:
        if is_pod:  # templates may leave it to config management, as Kubernetes allows
            causes.append(v.required(f"{path}.image"))
    elif not isinstance(image, str) or image != image.strip():
        causes.append(v.invalid(f"{path}.image", image,
                                "must not have leading or trailing whitespace"))
    causes += v.one_of(f"{path}.imagePullPolicy", c.get("imagePullPolicy"), PULL_POLICIES)
    causes += v.one_of(f"{path}.terminationMessagePolicy", c.get("terminationMessagePolicy"),
                       TERMINATION_MESSAGE_POLICIES)
    causes += _validate_ports(c.get("ports"), f"{path}.ports")
    causes += _validate_env(c.get("env"), f"{path}.env")
    causes += _validate_resources(c.get("resources"), f"{path}.resources")
    causes += _validate_mounts(c.get("volumeMounts"), f"{path}.volumeMounts", volumes)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        causes += _validate_probe(c.get(probe), f"{path}.{probe}", probe != "readinessProbe")
    return causes


def _validate_volumes(volumes: Any, path: str) -> tuple[Causes, set[str]]:
    causes: Causes = []
    names: set[str] = set()
    for i, vol in enumerate(as_list(volumes)):
        p = f"{path}[{i}]"
        if not isinstance(vol, dict):
            causes.append(v.invalid(p, vol, "must be an object"))
            continue
        name = vol.get("name")
        causes += v.check_name(f"{p}.name", name, "label")
        if isinstance(name, str) and name in names:
            causes.append(v.duplicate(f"{p}.name", name))
        if isinstance(name, str):
            names.add(name)
        sources = [k for k in vol if k != "name"]
        if not sources:
            causes.append(v.required(p, "must specify a volume type"))
        elif len(sources) > 1:
            causes.append(v.forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
    return causes, names


def _validate_tolerations(tolerations: Any, path: str) -> Causes:
    causes: Causes = []
    for i, t in enumerate(as_list(tolerations)):
        p = f"{path}[{i}]"
        if not isinstance(t, dict):
            causes.append(v.invalid(p, t, "must be an object"))
            continue
        key, op = t.get("key"), t.get("operator") or "Equal"
        if key:
            causes += v.check(f"{p}.key", key, v.qualified_name_errors(str(key)))
        elif op != "Exists":
            causes.append(v.invalid(f"{p}.operator", op,
                                    "operator must be Exists when `key` is empty, which means "
                                    "\"match all values and all keys\""))
        causes += v.one_of(f"{p}.operator", op, TOLERATION_OPERATORS)
        if op == "Exists" and t.get("value"):
            causes.append(v.invalid(f"{p}.operator", t["value"],
                                    "value must be empty when `operator` is 'Exists'"))
        causes += v.one_of(f"{p}.effect", t.get("effect"), TAINT_EFFECTS, need=False)
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            causes.append(v.invalid(f"{p}.effect", t.get("effect"),
                                    "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    return causes


def _validate_containers(spec: dict[str, Any], path: str, vols: set[str], is_pod: bool) -> Causes:
    causes: Causes = []
    containers = spec.get("containers")
    if not containers:
        causes.append(v.required(f"{path}.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        items = spec.get(key) or []
        if not isinstance(items, list):
            causes.append(v.invalid(f"{path}.{key}", items, "must be a list"))
            continue
        for i, c in enumerate(items):
            p = f"{path}.{key}[{i}]"
            causes += validate_container(c, p, vols, is_pod)
            name = c.get("name") if isinstance(c, dict) else None
            if isinstance(name, str) and name in seen:
                causes.append(v.duplicate(f"{p}.name", name))
            if isinstance(name, str):
                seen.add(name)
    return causes


def validate_pod_spec(spec: Any, path: str, is_pod: bool = True) -> Causes:
    """Everything about a PodSpec that does not depend on an older version of it."""
    if not isinstance(spec, dict):
        return [v.required(path)]
    causes, vols = _validate_volumes(spec.get("volumes"), f"{path}.volumes")
    causes += _validate_containers(spec, path, vols, is_pod)
    causes += v.one_of(f"{path}.restartPolicy", spec.get("restartPolicy"), RESTART_POLICIES)
    causes += v.one_of(f"{path}.dnsPolicy", spec.get("dnsPolicy"), DNS_POLICIES)
    if spec.get("dnsPolicy") == "None" and not spec.get("dnsConfig"):
        causes.append(v.required(f"{path}.dnsConfig",
                                 "must provide `dnsConfig` when `dnsPolicy` is None"))
    causes += v.non_negative(f"{path}.terminationGracePeriodSeconds",
                             spec.get("terminationGracePeriodSeconds"))
    if spec.get("activeDeadlineSeconds") is not None:
        causes += v.in_range(f"{path}.activeDeadlineSeconds", spec["activeDeadlineSeconds"],
                             1, 2147483647)
    causes += v.validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    causes += _validate_tolerations(spec.get("tolerations"), f"{path}.tolerations")
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            causes += v.check(f"{path}.{key}", spec[key], v.dns1123_label_errors(str(spec[key])))
    for key in ("serviceAccountName", "nodeName", "priorityClassName"):
        if spec.get(key):
            causes += v.check(f"{path}.{key}", spec[key],
                              v.dns1123_subdomain_errors(str(spec[key])))
    for i, gate in enumerate(as_list(spec.get("readinessGates"))):
        ctype = gate.get("conditionType") if isinstance(gate, dict) else None
        if not ctype:
            causes.append(v.required(f"{path}.readinessGates[{i}].conditionType"))
        else:
            causes += v.check(f"{path}.readinessGates[{i}].conditionType", ctype,
                              v.qualified_name_errors(str(ctype)))
    return causes


def validate_pod_template(template: Any, path: str) -> Causes:
    """A workload's template: valid labels/annotations, a valid spec, restartPolicy Always."""
    if not isinstance(template, dict):
        return [v.required(path)]
    meta = as_dict(template.get("metadata"))
    causes = v.validate_labels(meta.get("labels"), f"{path}.metadata.labels")
    causes += v.validate_annotations(meta.get("annotations"), f"{path}.metadata.annotations")
    causes += validate_pod_spec(template.get("spec"), f"{path}.spec", is_pod=False)
    policy = v_get(template, "spec", "restartPolicy")
    if policy and policy != "Always" and policy in RESTART_POLICIES:
        causes.append(v.not_supported(f"{path}.spec.restartPolicy", policy, ("Always",)))
    return causes


def compute_qos_class(spec: Obj) -> str:
    """Guaranteed, Burstable or BestEffort from the cpu/memory requests and limits."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    containers = as_list(spec.get("initContainers")) + as_list(spec.get("containers"))
    for c in containers:
        res = c.get("resources") if isinstance(c, dict) else None
        res = res if isinstance(res, dict) else {}
        for name in ("cpu", "memory"):
            for kind, acc in (("requests", requests), ("limits", limits)):
                raw = as_dict(res.get(kind)).get(name)
                try:
                    value = parse_quantity(raw) if raw is not None else None
                except QuantityError:
                    value = None
                if value is not None and value != 0:
                    acc[name] = acc.get(name, 0) + value
            if as_dict(res.get("limits")).get(name) is None:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits and set(limits) == {"cpu", "memory"}:
        return "Guaranteed"
    return "Burstable"
