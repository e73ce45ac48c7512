"""core/v1 Container and what it is made of: env, ports, mounts, probes,
lifecycle hooks, resources and the security context."""

from __future__ import annotations

from corral.resources.schema import Schema
from corral.resources.schemas.dsl import (
    CORE,
    arr,
    boolean,
    int64,
    int_or_string,
    integer,
    obj,
    resource_list,
    string,
    strings,
)
from corral.resources.schemas.refs import (
    CONFIG_MAP_KEY_SELECTOR,
    OBJECT_FIELD_SELECTOR,
    RESOURCE_FIELD_SELECTOR,
    SECRET_KEY_SELECTOR,
)

FILE_KEY_SELECTOR = obj(
    "A key of an env file in a volume.",
    {
        "key": string("The variable name to read from the file."),
        "optional": boolean("Whether the file or key may be missing."),
        "path": string("Path of the file within the volume."),
        "volumeName": string("Name of the volume holding the file."),
    },
    required=("volumeName", "path", "key"),
    ref=f"{CORE}.FileKeySelector",
    map_type="atomic",
)

ENV_VAR_SOURCE = obj(
    "Where an environment variable's value comes from.",
    {
        "configMapKeyRef": CONFIG_MAP_KEY_SELECTOR,
        "fieldRef": OBJECT_FIELD_SELECTOR,
        "fileKeyRef": FILE_KEY_SELECTOR,
        "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
        "secretKeyRef": SECRET_KEY_SELECTOR,
    },
    ref=f"{CORE}.EnvVarSource",
)

ENV_VAR = obj(
    "An environment variable of a container.",
    {
        "name": string("Variable name."),
        "value": string("Literal value; $(VAR) references are expanded."),
        "valueFrom": ENV_VAR_SOURCE,
    },
    required=("name",),
    ref=f"{CORE}.EnvVar",
)

ENV_FROM_SOURCE = obj(
    "A ConfigMap or Secret whose keys all become environment variables.",
    {
        "configMapRef": obj(
            "A ConfigMap whose keys become variables.",
            {
                "name": string("Name of the ConfigMap."),
                "optional": boolean("Whether the ConfigMap may be missing."),
            },
            ref=f"{CORE}.ConfigMapEnvSource",
        ),
        "prefix": string("Prefix added to every variable name."),
        "secretRef": obj(
            "A Secret whose keys become variables.",
            {
                "name": string("Name of the Secret."),
                "optional": boolean("Whether the Secret may be missing."),
            },
            ref=f"{CORE}.SecretEnvSource",
        ),
    },
    ref=f"{CORE}.EnvFromSource",
)

CONTAINER_PORT = obj(
    "A network port a container listens on.",
    {
        "containerPort": integer("Port number inside the container's network namespace."),
        "hostIP": string("Host address to bind an exposed host port to."),
        "hostPort": integer("Port to expose on the host; most pods do not need one."),
        "name": string("IANA service name for the port, referable by Services."),
        "protocol": string("TCP (default), UDP or SCTP.", enum=("TCP", "UDP", "SCTP")),
    },
    required=("containerPort",),
    ref=f"{CORE}.ContainerPort",
)

VOLUME_MOUNT = obj(
    "Where a pod volume appears in the container's file system.",
    {
        "mountPath": string("Path in the container; must not contain ':'."),
        "mountPropagation": string("None, HostToContainer or Bidirectional."),
        "name": string("Name of the pod volume to mount."),
        "readOnly": boolean("Mount read-only."),
        "recursiveReadOnly": string("Disabled, IfPossible or Enabled."),
        "subPath": string("Path within the volume to mount instead of its root."),
        "subPathExpr": string("Like subPath, with $(VAR) expansion."),
        "bindMountOptions": strings("Extra options for the bind mount."),
    },
    required=("name", "mountPath"),
    ref=f"{CORE}.VolumeMount",
)

VOLUME_DEVICE = obj(
    "A raw block volume exposed as a device in the container.",
    {
        "devicePath": string("Path of the device in the container."),
        "name": string("Name of the persistentVolumeClaim volume."),
    },
    required=("name", "devicePath"),
    ref=f"{CORE}.VolumeDevice",
)

EXEC_ACTION = obj(
    "Run a command in the container; exit status 0 is success.",
    {"command": strings("Command line, run without a shell.")},
    ref=f"{CORE}.ExecAction",
)

HTTP_GET_ACTION = obj(
    "An HTTP GET against the container; a 2xx or 3xx answer is success.",
    {
        "host": string("Host to connect to; defaults to the pod IP."),
        "httpHeaders": arr(
            obj(
                "One HTTP header.",
                {"name": string("Header name."), "value": string("Header value.")},
                required=("name", "value"),
                ref=f"{CORE}.HTTPHeader",
            ),
            "Custom request headers.",
        ),
        "path": string("Path to request."),
        "port": int_or_string(),
        "protocol": string("Protocol spoken to the port, e.g. HTTP/1.1 or HTTP/2."),
        "scheme": string("HTTP (default) or HTTPS.", enum=("HTTP", "HTTPS")),
    },
    required=("port",),
    ref=f"{CORE}.HTTPGetAction",
)

TCP_SOCKET_ACTION = obj(
    "Open a TCP connection; connecting is success.",
    {"host": string("Host to connect to; defaults to the pod IP."), "port": int_or_string()},
    required=("port",),
    ref=f"{CORE}.TCPSocketAction",
)

GRPC_ACTION = obj(
    "A gRPC health check (grpc.health.v1).",
    {
        "port": integer("Port of the gRPC service."),
        "service": string("Service name sent in the health check request."),
        "mode": string("How the check is made; empty for the standard health protocol."),
    },
    required=("port",),
    ref=f"{CORE}.GRPCAction",
)

PROBE = obj(
    "A periodic health check of a container and the thresholds that judge it.",
    {
        "exec": EXEC_ACTION,
        "failureThreshold": integer("Consecutive failures that mark the probe failed."),
        "grpc": GRPC_ACTION,
        "httpGet": HTTP_GET_ACTION,
        "initialDelaySeconds": integer("Seconds after start before the first probe."),
        "periodSeconds": integer("Seconds between probes; default 10."),
        "successThreshold": integer("Consecutive successes that mark the probe passed."),
        "tcpSocket": TCP_SOCKET_ACTION,
        "terminationGracePeriodSeconds": int64(
            "Grace period used when a failed liveness probe kills the container."
        ),
        "timeoutSeconds": integer("Seconds before a probe attempt times out; default 1."),
    },
    ref=f"{CORE}.Probe",
)

LIFECYCLE_HANDLER = obj(
    "The action of a lifecycle hook: exactly one of exec, httpGet, sleep, tcpSocket.",
    {
        "exec": EXEC_ACTION,
        "httpGet": HTTP_GET_ACTION,
        "sleep": obj(
            "Sleep for a while.",
            {"seconds": int64("Seconds to sleep.")},
            required=("seconds",),
            ref=f"{CORE}.SleepAction",
        ),
        "tcpSocket": TCP_SOCKET_ACTION,
    },
    ref=f"{CORE}.LifecycleHandler",
)

LIFECYCLE = obj(
    "Hooks run right after a container starts and right before it is stopped.",
    {
        "postStart": LIFECYCLE_HANDLER,
        "preStop": LIFECYCLE_HANDLER,
        "stopSignal": string("Signal sent to stop the container, e.g. SIGTERM."),
    },
    ref=f"{CORE}.Lifecycle",
)

RESOURCE_CLAIM = obj(
    "A pod resource claim this container uses.",
    {
        "name": string("Name of an entry in pod.spec.resourceClaims."),
        "request": string("A request within the claim to use."),
    },
    required=("name",),
    ref=f"{CORE}.ResourceClaim",
)

RESOURCE_REQUIREMENTS = obj(
    "Compute resources: what is reserved (requests) and the cap (limits).",
    {
        "claims": arr(
            RESOURCE_CLAIM,
            "Dynamic resource claims used by the container.",
            list_type="map",
            keys=("name",),
        ),
        "limits": resource_list("Maximum resources allowed, e.g. cpu: 500m, memory: 256Mi."),
        "requests": resource_list("Resources reserved for scheduling; defaults to limits."),
    },
    ref=f"{CORE}.ResourceRequirements",
)

SE_LINUX_OPTIONS = obj(
    "SELinux labels applied to the container.",
    {
        "level": string("SELinux level."),
        "role": string("SELinux role."),
        "type": string("SELinux type."),
        "user": string("SELinux user."),
    },
    ref=f"{CORE}.SELinuxOptions",
)

SECCOMP_PROFILE = obj(
    "The seccomp profile applied.",
    {
        "localhostProfile": string("Profile file on the node, for type Localhost."),
        "type": string("RuntimeDefault, Unconfined or Localhost."),
    },
    required=("type",),
    ref=f"{CORE}.SeccompProfile",
)

APP_ARMOR_PROFILE = obj(
    "The AppArmor profile applied.",
    {
        "localhostProfile": string("Profile loaded on the node, for type Localhost."),
        "type": string("RuntimeDefault, Unconfined or Localhost."),
    },
    required=("type",),
    ref=f"{CORE}.AppArmorProfile",
)

WINDOWS_OPTIONS = obj(
    "Windows-specific security settings.",
    {
        "gmsaCredentialSpec": string("Content of the GMSA credential spec."),
        "gmsaCredentialSpecName": string("Name of the GMSA credential spec."),
        "hostProcess": boolean("Run as a Windows host process."),
        "runAsUserName": string("Windows user to run as."),
    },
    ref=f"{CORE}.WindowsSecurityContextOptions",
)

SECURITY_CONTEXT = obj(
    "Privileges and access control of one container; overrides the pod's settings.",
    {
        "allowPrivilegeEscalation": boolean("Whether a process may gain more privileges."),
        "appArmorProfile": APP_ARMOR_PROFILE,
        "capabilities": obj(
            "Linux capabilities to add and drop.",
            {
                "add": strings("Capabilities to add, e.g. NET_ADMIN."),
                "drop": strings("Capabilities to drop, e.g. ALL."),
            },
            ref=f"{CORE}.Capabilities",
        ),
        "privileged": boolean("Run as privileged (root on the host)."),
        "procMount": string("Default or Unmasked."),
        "readOnlyRootFilesystem": boolean("Mount the root file system read-only."),
        "runAsGroup": int64("GID the process runs as."),
        "runAsNonRoot": boolean("Refuse to start if the image would run as UID 0."),
        "runAsUser": int64("UID the process runs as."),
        "seLinuxOptions": SE_LINUX_OPTIONS,
        "seccompProfile": SECCOMP_PROFILE,
        "windowsOptions": WINDOWS_OPTIONS,
    },
    ref=f"{CORE}.SecurityContext",
)

RESIZE_POLICY = obj(
    "What resizing one resource of a running container requires.",
    {
        "resourceName": string("cpu or memory."),
        "restartPolicy": string("NotRequired or RestartContainer."),
    },
    required=("resourceName", "restartPolicy"),
    ref=f"{CORE}.ContainerResizePolicy",
)

RESTART_RULE = obj(
    "A rule deciding whether an exited container restarts, by exit code.",
    {
        "action": string("What to do when the rule matches: Restart."),
        "exitCodes": obj(
            "Exit codes the rule matches.",
            {
                "operator": string("In or NotIn."),
                "values": arr(integer(), "Exit codes.", list_type="set"),
            },
            required=("operator",),
            ref=f"{CORE}.ContainerRestartRuleOnExitCodes",
        ),
    },
    required=("action",),
    ref=f"{CORE}.ContainerRestartRule",
)


def _container_fields() -> dict[str, Schema]:
    """Fields shared by Container and EphemeralContainer."""
    return {
        "args": strings("Arguments to the entrypoint; $(VAR) references are expanded."),
        "command": strings("Entrypoint; replaces the image's ENTRYPOINT. Not run in a shell."),
        "env": arr(
            ENV_VAR,
            "Environment variables to set.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "envFrom": arr(ENV_FROM_SOURCE, "Sources of many environment variables at once."),
        "image": string("Container image name, e.g. nginx:1.27."),
        "imagePullPolicy": string(
            "Always, Never or IfNotPresent.", enum=("Always", "Never", "IfNotPresent")
        ),
        "lifecycle": LIFECYCLE,
        "livenessProbe": PROBE,
        "name": string("Name of the container, unique within the pod (DNS label)."),
        "ports": arr(
            CONTAINER_PORT,
            "Ports the container exposes; informational, any port is reachable.",
            list_type="map",
            keys=("containerPort", "protocol"),
            merge_key="containerPort",
            strategy="merge",
        ),
        "readinessProbe": PROBE,
        "resizePolicy": arr(RESIZE_POLICY, "How each resource may be resized."),
        "resources": RESOURCE_REQUIREMENTS,
        "restartPolicy": string("Per-container restart policy; Always makes a sidecar."),
        "restartPolicyRules": arr(RESTART_RULE, "Exit-code rules refining restartPolicy."),
        "securityContext": SECURITY_CONTEXT,
        "startupProbe": PROBE,
        "stdin": boolean("Keep a stdin buffer open for the container."),
        "stdinOnce": boolean("Close stdin after the first attached client detaches."),
        "terminationMessagePath": string("File whose content becomes the termination message."),
        "terminationMessagePolicy": string("File or FallbackToLogsOnError."),
        "tty": boolean("Allocate a TTY; needs stdin."),
        "volumeDevices": arr(
            VOLUME_DEVICE,
            "Block devices to expose.",
            list_type="map",
            keys=("devicePath",),
            merge_key="devicePath",
            strategy="merge",
        ),
        "volumeMounts": arr(
            VOLUME_MOUNT,
            "Pod volumes to mount into the container.",
            list_type="map",
            keys=("mountPath",),
            merge_key="mountPath",
            strategy="merge",
        ),
        "workingDir": string("Working directory; defaults to the image's."),
    }


CONTAINER = obj(
    "One container of a pod: image, command, environment, ports, mounts, probes and resources.",
    _container_fields(),
    required=("name",),
    ref=f"{CORE}.Container",
)

EPHEMERAL_CONTAINER = obj(
    "A container added to a running pod for debugging; never restarted.",
    {
        **_container_fields(),
        "targetContainerName": string("Container whose namespaces this one joins."),
    },
    required=("name",),
    ref=f"{CORE}.EphemeralContainer",
)
