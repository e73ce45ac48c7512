"""core/v1 Pod: PodSpec, PodStatus and PodTemplateSpec."""

from __future__ import annotations

from corral.resources.schemas.container import (
    APP_ARMOR_PROFILE,
    CONTAINER,
    EPHEMERAL_CONTAINER,
    RESOURCE_REQUIREMENTS,
    SE_LINUX_OPTIONS,
    SECCOMP_PROFILE,
    WINDOWS_OPTIONS,
)
from corral.resources.schemas.dsl import (
    CORE,
    arr,
    boolean,
    int64,
    integer,
    obj,
    resource_list,
    string,
    string_map,
    strings,
    time,
)
from corral.resources.schemas.meta import OBJECT_META
from corral.resources.schemas.refs import LOCAL_OBJECT_REFERENCE
from corral.resources.schemas.scheduling import (
    AFFINITY,
    TOLERATION,
    TOPOLOGY_SPREAD_CONSTRAINT,
)
from corral.resources.schemas.volume import VOLUME

POD_SECURITY_CONTEXT = obj(
    "Security settings for all containers of the pod; a container's own context wins.",
    {
        "appArmorProfile": APP_ARMOR_PROFILE,
        "fsGroup": int64("Group that owns mounted volumes and is added to every process."),
        "fsGroupChangePolicy": string("OnRootMismatch or Always: when to chown volumes."),
        "runAsGroup": int64("GID the containers' processes run as."),
        "runAsNonRoot": boolean("Refuse to start containers that would run as UID 0."),
        "runAsUser": int64("UID the containers' processes run as."),
        "seLinuxChangePolicy": string("Recursive or MountOption: how volumes get SELinux labels."),
        "seLinuxOptions": SE_LINUX_OPTIONS,
        "seccompProfile": SECCOMP_PROFILE,
        "supplementalGroups": arr(int64(), "Extra groups for the first process."),
        "supplementalGroupsPolicy": string("Merge or Strict: whether image groups are added."),
        "sysctls": arr(
            obj(
                "One kernel parameter.",
                {"name": string("Parameter name."), "value": string("Value to set.")},
                required=("name", "value"),
                ref=f"{CORE}.Sysctl",
            ),
            "Namespaced kernel parameters to set.",
        ),
        "windowsOptions": WINDOWS_OPTIONS,
    },
    ref=f"{CORE}.PodSecurityContext",
)

POD_DNS_CONFIG = obj(
    "DNS resolver settings merged with those the dnsPolicy gives.",
    {
        "nameservers": strings("Extra name server addresses."),
        "options": arr(
            obj(
                "One resolver option.",
                {"name": string("Option name, e.g. ndots."), "value": string("Option value.")},
                ref=f"{CORE}.PodDNSConfigOption",
            ),
            "Resolver options.",
        ),
        "searches": strings("Extra search domains."),
    },
    ref=f"{CORE}.PodDNSConfig",
)

POD_SPEC = obj(
    "Desired state of a pod: its containers and volumes, and where and how it runs.",
    {
        "activeDeadlineSeconds": int64("Seconds the pod may be active before it is failed."),
        "affinity": AFFINITY,
        "automountServiceAccountToken": boolean("Mount the service account token."),
        "containers": arr(
            CONTAINER,
            "The pod's containers; at least one.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "dnsConfig": POD_DNS_CONFIG,
        "dnsPolicy": string(
            "ClusterFirst (default), ClusterFirstWithHostNet, Default or None.",
            enum=("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
        ),
        "enableServiceLinks": boolean("Inject Docker-link style service variables."),
        "ephemeralContainers": arr(
            EPHEMERAL_CONTAINER,
            "Debugging containers added to the running pod.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "evictionResponders": arr(
            obj(
                "A component notified before the pod is evicted.",
                {"name": string("Responder name."), "priority": integer("Call order.")},
                ref=f"{CORE}.EvictionResponder",
            ),
            "Components notified before eviction.",
            list_type="map",
            keys=("name",),
        ),
        "hostAliases": arr(
            obj(
                "Extra /etc/hosts entries for one address.",
                {"hostnames": strings("Host names."), "ip": string("The address.")},
                required=("ip",),
                ref=f"{CORE}.HostAlias",
            ),
            "Entries added to the pod's /etc/hosts.",
            list_type="map",
            keys=("ip",),
            merge_key="ip",
            strategy="merge",
        ),
        "hostIPC": boolean("Use the host's IPC namespace."),
        "hostNetwork": boolean("Use the host's network namespace."),
        "hostPID": boolean("Use the host's PID namespace."),
        "hostUsers": boolean("Use the host's user namespace; false gives the pod its own."),
        "hostname": string("Host name of the pod; defaults to its name."),
        "hostnameOverride": string("Exact host name to set, overriding hostname/subdomain."),
        "imagePullSecrets": arr(
            LOCAL_OBJECT_REFERENCE,
            "Secrets with registry credentials for pulling images.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "initContainers": arr(
            CONTAINER,
            "Containers run to completion, in order, before the others start.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "nodeName": string("Node the pod is bound to; set by the scheduler."),
        "nodeSelector": string_map("Labels a node must have to run the pod.", map_type="atomic"),
        "os": obj(
            "Operating system the pod's containers need.",
            {"name": string("linux or windows.")},
            required=("name",),
            ref=f"{CORE}.PodOS",
        ),
        "overhead": resource_list("Resources the pod's sandbox uses beyond its containers."),
        "preemptionPolicy": string("PreemptLowerPriority (default) or Never."),
        "priority": integer("Priority value resolved from priorityClassName."),
        "priorityClassName": string("PriorityClass giving the pod's priority."),
        "readinessGates": arr(
            obj(
                "An extra condition the pod needs to be ready.",
                {"conditionType": string("Condition type in the pod's status.")},
                required=("conditionType",),
                ref=f"{CORE}.PodReadinessGate",
            ),
            "Extra conditions evaluated for readiness.",
        ),
        "resourceClaims": arr(
            obj(
                "A dynamic resource claim the pod uses.",
                {
                    "name": string("Name of the claim within the pod."),
                    "resourceClaimName": string("An existing ResourceClaim."),
                    "resourceClaimTemplateName": string("Template to create a claim from."),
                },
                required=("name",),
                ref=f"{CORE}.PodResourceClaim",
            ),
            "Dynamic resources the pod needs.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge,retainKeys",
        ),
        "resources": RESOURCE_REQUIREMENTS,
        "restartPolicy": string(
            "Always (default), OnFailure or Never.", enum=("Always", "OnFailure", "Never")
        ),
        "runtimeClassName": string("RuntimeClass to run the pod with."),
        "schedulerName": string("Scheduler that places the pod."),
        "schedulingGates": arr(
            obj(
                "A gate that holds the pod back from scheduling.",
                {"name": string("Gate name.")},
                required=("name",),
                ref=f"{CORE}.PodSchedulingGate",
            ),
            "While any gate remains the pod is not scheduled.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "schedulingGroup": obj(
            "The group the pod is scheduled together with.",
            {"podGroupName": string("Name of the pod group.")},
            ref=f"{CORE}.PodSchedulingGroup",
        ),
        "securityContext": POD_SECURITY_CONTEXT,
        "serviceAccount": string("Deprecated alias of serviceAccountName."),
        "serviceAccountName": string("ServiceAccount the pod runs as."),
        "setHostnameAsFQDN": boolean("Set the host name to the fully qualified domain name."),
        "shareProcessNamespace": boolean("Share one PID namespace among the containers."),
        "subdomain": string("Subdomain giving the pod a DNS name under a headless service."),
        "terminationGracePeriodSeconds": int64("Seconds between SIGTERM and SIGKILL; default 30."),
        "tolerations": arr(TOLERATION, "Taints the pod tolerates."),
        "topologySpreadConstraints": arr(
            TOPOLOGY_SPREAD_CONSTRAINT,
            "How the pod's replicas spread over topology domains.",
            list_type="map",
            keys=("topologyKey", "whenUnsatisfiable"),
            merge_key="topologyKey",
            strategy="merge",
        ),
        "volumes": arr(
            VOLUME,
            "Volumes the containers may mount.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge,retainKeys",
        ),
    },
    required=("containers",),
    ref=f"{CORE}.PodSpec",
)

POD_TEMPLATE_SPEC = obj(
    "The pod a controller creates: its metadata and spec.",
    {"metadata": OBJECT_META, "spec": POD_SPEC},
    ref=f"{CORE}.PodTemplateSpec",
)

CONTAINER_STATE = obj(
    "A container's state: exactly one of waiting, running or terminated.",
    {
        "running": obj(
            "The container is running.",
            {"startedAt": time()},
            ref=f"{CORE}.ContainerStateRunning",
        ),
        "terminated": obj(
            "The container ran and exited.",
            {
                "containerID": string("Runtime ID of the container."),
                "exitCode": integer("Exit status of the last run."),
                "finishedAt": time(),
                "message": string("Details of the termination."),
                "reason": string("Short reason, e.g. Completed or OOMKilled."),
                "signal": integer("Signal that killed it, if any."),
                "startedAt": time(),
            },
            required=("exitCode",),
            ref=f"{CORE}.ContainerStateTerminated",
        ),
        "waiting": obj(
            "The container is not running yet.",
            {
                "message": string("Why it is waiting."),
                "reason": string("Short reason, e.g. ContainerCreating or CrashLoopBackOff."),
            },
            ref=f"{CORE}.ContainerStateWaiting",
        ),
    },
    ref=f"{CORE}.ContainerState",
)

CONTAINER_STATUS = obj(
    "The observed state of one container.",
    {
        "allocatedResources": resource_list("Resources allocated to the container."),
        "allocatedResourcesStatus": arr(
            obj(
                "Health of the devices behind one resource.",
                {
                    "name": string("Resource name."),
                    "resources": arr(
                        obj(
                            "Health of one device.",
                            {
                                "health": string("Healthy, Unhealthy or Unknown."),
                                "message": string("Details."),
                                "resourceID": string("Device ID."),
                            },
                            required=("resourceID",),
                            ref=f"{CORE}.ResourceHealth",
                        ),
                        "Devices of the resource.",
                        list_type="map",
                        keys=("resourceID",),
                    ),
                },
                required=("name",),
                ref=f"{CORE}.ResourceStatus",
            ),
            "Health of allocated devices.",
            list_type="map",
            keys=("name",),
        ),
        "containerID": string("Runtime ID, as <type>://<id>."),
        "image": string("Image the container runs."),
        "imageID": string("Resolved ID of the image."),
        "lastState": CONTAINER_STATE,
        "name": string("Container name."),
        "ready": boolean("Whether the readiness probe passes."),
        "resources": RESOURCE_REQUIREMENTS,
        "restartCount": integer("Number of restarts."),
        "started": boolean("Whether the startup probe passed."),
        "state": CONTAINER_STATE,
        "stopSignal": string("Signal used to stop the container."),
        "user": obj(
            "Identity the container's first process runs as.",
            {
                "linux": obj(
                    "Linux user and groups.",
                    {
                        "gid": int64("Primary GID."),
                        "supplementalGroups": arr(int64(), "Extra GIDs."),
                        "uid": int64("UID."),
                    },
                    required=("uid", "gid"),
                    ref=f"{CORE}.LinuxContainerUser",
                ),
            },
            ref=f"{CORE}.ContainerUser",
        ),
        "volumeMounts": arr(
            obj(
                "State of one volume mount.",
                {
                    "mountPath": string("Path in the container."),
                    "name": string("Volume name."),
                    "readOnly": boolean("Mounted read-only."),
                    "recursiveReadOnly": string("Effective recursive read-only mode."),
                    "volumeStatus": obj(
                        "Source-specific status.",
                        {
                            "image": obj(
                                "Status of an image volume.",
                                {"imageRef": string("Resolved image.")},
                                required=("imageRef",),
                                ref=f"{CORE}.ImageVolumeStatus",
                            )
                        },
                        ref=f"{CORE}.VolumeStatus",
                    ),
                },
                required=("name", "mountPath"),
                ref=f"{CORE}.VolumeMountStatus",
            ),
            "Mounted volumes.",
            list_type="map",
            keys=("mountPath",),
            merge_key="mountPath",
            strategy="merge",
        ),
    },
    required=("name", "ready", "restartCount", "image", "imageID"),
    ref=f"{CORE}.ContainerStatus",
)
