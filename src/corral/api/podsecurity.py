"""Pod Security admission: the ``pod-security.kubernetes.io/enforce`` label of
a namespace (privileged, baseline or restricted) refuses pods that break
the level, with Kubernetes' wording.

The checks are the ones that mean something on corral's runtimes: host
namespaces, privileged mode, host paths and ports, capabilities, running as
root, privilege escalation, seccomp, and (restricted) volume types.
"""

from __future__ import annotations

from typing import Any

LABEL = "pod-security.kubernetes.io/enforce"
LEVELS = ("privileged", "baseline", "restricted")
BASELINE_CAPS = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                           "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                "persistentVolumeClaim", "projected", "secret"})
Obj = dict[str, Any]


def _containers(spec: Obj) -> list[Obj]:
    out: list[Obj] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in spec.get(key) or [] if isinstance(c, dict)]
    return out


def _sc(obj: Obj) -> Obj:
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def baseline_violations(spec: Obj) -> list[str]:
    found: list[str] = []
    hosts = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    if hosts:
        found.append(f"host namespaces ({', '.join(hosts)})")
    for c in _containers(spec):
        name, sc = c.get("name"), _sc(c)
        if sc.get("privileged") is True:
            found.append(f'privileged (container "{name}" must not set securityContext.privileged=true)')
        added = [cap for cap in (sc.get("capabilities") or {}).get("add") or [] if cap not in BASELINE_CAPS]
        if added:
            caps = ", ".join(f'"{cap}"' for cap in added)
            found.append(f'non-default capabilities (container "{name}" must not include {caps} in '
                         "securityContext.capabilities.add)")
        ports = [str(p.get("hostPort")) for p in c.get("ports") or [] if isinstance(p, dict) and p.get("hostPort")]
        if ports:
            found.append(f'hostPort (container "{name}" uses hostPort {", ".join(ports)})')
    paths = [str(v.get("name")) for v in spec.get("volumes") or [] if isinstance(v, dict) and "hostPath" in v]
    if paths:
        found.append(f'hostPath volumes ({", ".join(f"{chr(34)}{p}{chr(34)}" for p in paths)})')
    return found


def restricted_violations(spec: Obj) -> list[str]:
    found = baseline_violations(spec)
    pod_sc = _sc(spec)
    for c in _containers(spec):
        name, sc = c.get("name"), _sc(c)
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f'allowPrivilegeEscalation != false (container "{name}" must set '
                         "securityContext.allowPrivilegeEscalation=false)")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            found.append(f'unrestricted capabilities (container "{name}" must set securityContext.capabilities.drop=["ALL"])')
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            found.append(f'runAsNonRoot != true (pod or container "{name}" must set securityContext.runAsNonRoot=true)')
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            found.append(f'runAsUser=0 (pod or container "{name}" must not set runAsUser=0)')
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f'seccompProfile (pod or container "{name}" must set securityContext.seccompProfile.type '
                         'to "RuntimeDefault" or "Localhost")')
    for vol in spec.get("volumes") or []:
        if isinstance(vol, dict):
            kinds = [k for k in vol if k != "name" and k not in RESTRICTED_VOLUMES and k != "hostPath"]
            if kinds:
                found.append(f'restricted volume types (volume "{vol.get("name")}" uses restricted volume type "{kinds[0]}")')
    return found


def violations(level: str, pod: Obj) -> list[str]:
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    if level == "baseline":
        return baseline_violations(spec)
    if level == "restricted":
        return restricted_violations(spec)
    return []
