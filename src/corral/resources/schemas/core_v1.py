"""The core/v1 kinds other than Pod: Namespace, Node, Service, Endpoints,
ConfigMap, Secret, Event, ServiceAccount and Binding."""

from __future__ import annotations

from corral.resources.schemas.dsl import (
    CORE,
    arr,
    boolean,
    byte_string,
    int64,
    int_or_string,
    integer,
    kind_object,
    map_of,
    micro_time,
    obj,
    resource_list,
    string,
    string_map,
    strings,
    time,
)
from corral.resources.schemas.meta import CONDITION, OBJECT_META
from corral.resources.schemas.refs import LOCAL_OBJECT_REFERENCE, OBJECT_REFERENCE

_STATUS = string("True, False or Unknown.")

NAMESPACE = kind_object(
    f"{CORE}.Namespace",
    "A scope for names; most objects live in one.",
    {
        "spec": obj(
            "Desired state of a namespace.",
            {"finalizers": strings("Must be empty before the namespace is removed.")},
            ref=f"{CORE}.NamespaceSpec",
        ),
        "status": obj(
            "Observed state of a namespace.",
            {
                "conditions": arr(
                    obj(
                        "One aspect of the namespace's state.",
                        {
                            "lastTransitionTime": time(),
                            "message": string("Details."),
                            "reason": string("Reason."),
                            "status": _STATUS,
                            "type": string("Condition type."),
                        },
                        required=("type", "status"),
                        ref=f"{CORE}.NamespaceCondition",
                    ),
                    "Current conditions.",
                    list_type="map",
                    keys=("type",),
                    merge_key="type",
                    strategy="merge",
                ),
                "phase": string("Active or Terminating.", enum=("Active", "Terminating")),
            },
            ref=f"{CORE}.NamespaceStatus",
        ),
    },
    metadata=OBJECT_META,
)

TAINT = obj(
    "Repels pods that do not tolerate it from a node.",
    {
        "effect": string(
            "NoSchedule, PreferNoSchedule or NoExecute.",
            enum=("NoSchedule", "PreferNoSchedule", "NoExecute"),
        ),
        "key": string("Taint key."),
        "timeAdded": time(),
        "value": string("Taint value."),
    },
    required=("key", "effect"),
    ref=f"{CORE}.Taint",
)

NODE_CONFIG_SOURCE = obj(
    "Where a node's kubelet configuration comes from (deprecated).",
    {
        "configMap": obj(
            "A ConfigMap holding kubelet configuration.",
            {
                "kubeletConfigKey": string("Key holding the configuration."),
                "name": string("ConfigMap name."),
                "namespace": string("ConfigMap namespace."),
                "resourceVersion": string("ConfigMap resourceVersion."),
                "uid": string("ConfigMap UID."),
            },
            required=("namespace", "name", "kubeletConfigKey"),
            ref=f"{CORE}.ConfigMapNodeConfigSource",
        )
    },
    ref=f"{CORE}.NodeConfigSource",
)

NODE_SPEC = obj(
    "Desired state of a node: pod address range, taints, schedulability.",
    {
        "configSource": NODE_CONFIG_SOURCE,
        "externalID": string("Deprecated."),
        "podCIDR": string("Pod address range of the node."),
        "podCIDRs": arr(
            string(), "Pod address ranges, one per IP family.", list_type="set", strategy="merge"
        ),
        "podPreemptionPolicy": obj(
            "When pods on this node may be preempted.",
            {"disableResizePreemption": strings("Resources whose resize never preempts.")},
            ref=f"{CORE}.NodePodPreemptionPolicy",
        ),
        "providerID": string("Cloud provider's ID of the node."),
        "taints": arr(TAINT, "Taints of the node."),
        "unschedulable": boolean("Keep new pods off the node (cordon)."),
    },
    ref=f"{CORE}.NodeSpec",
)

NODE_SYSTEM_INFO = obj(
    "Facts about the node's machine and software.",
    {
        "architecture": string("CPU architecture, e.g. amd64."),
        "bootID": string("ID of the current boot."),
        "containerRuntimeVersion": string("Runtime name and version."),
        "kernelVersion": string("Kernel version (uname -r)."),
        "kubeProxyVersion": string("Deprecated."),
        "kubeletVersion": string("Node agent version."),
        "machineID": string("Machine ID (/etc/machine-id)."),
        "operatingSystem": string("linux or windows."),
        "osImage": string("OS image, from /etc/os-release."),
        "runningInUserNamespace": boolean("Whether the agent runs in a user namespace."),
        "swap": obj(
            "Swap memory of the node.",
            {"capacity": int64("Swap size in bytes.")},
            ref=f"{CORE}.NodeSwapStatus",
        ),
        "systemUUID": string("System UUID."),
    },
    required=(
        "machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
        "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion",
        "operatingSystem", "architecture",
    ),
    ref=f"{CORE}.NodeSystemInfo",
)

NODE_STATUS = obj(
    "Observed state of a node: resources, conditions, addresses, software.",
    {
        "addresses": arr(
            obj(
                "An address of the node.",
                {
                    "address": string("The address."),
                    "type": string("Hostname, InternalIP, ExternalIP, InternalDNS or ExternalDNS."),
                },
                required=("type", "address"),
                ref=f"{CORE}.NodeAddress",
            ),
            "Addresses of the node.",
            list_type="map",
            keys=("type",),
            merge_key="type",
            strategy="merge",
        ),
        "allocatable": resource_list("Resources available to pods."),
        "capacity": resource_list("Total resources of the node."),
        "conditions": arr(
            obj(
                "One aspect of the node's state: Ready, MemoryPressure, DiskPressure, ...",
                {
                    "lastHeartbeatTime": time(),
                    "lastTransitionTime": time(),
                    "message": string("Details."),
                    "reason": string("Reason."),
                    "status": _STATUS,
                    "type": string("Condition type."),
                },
                required=("type", "status"),
                ref=f"{CORE}.NodeCondition",
            ),
            "Current conditions.",
            list_type="map",
            keys=("type",),
            merge_key="type",
            strategy="merge",
        ),
        "config": obj(
            "Status of dynamic kubelet configuration (deprecated).",
            {
                "active": NODE_CONFIG_SOURCE,
                "assigned": NODE_CONFIG_SOURCE,
                "error": string("Configuration error."),
                "lastKnownGood": NODE_CONFIG_SOURCE,
            },
            ref=f"{CORE}.NodeConfigStatus",
        ),
        "daemonEndpoints": obj(
            "Ports of the daemons on the node.",
            {
                "kubeletEndpoint": obj(
                    "Port of the node agent.",
                    {"Port": integer("Port number.")},
                    required=("Port",),
                    ref=f"{CORE}.DaemonEndpoint",
                )
            },
            ref=f"{CORE}.NodeDaemonEndpoints",
        ),
        "declaredFeatures": strings("Features the node declares.", list_type="set"),
        "features": obj(
            "Features the node supports.",
            {"supplementalGroupsPolicy": boolean("Supports supplementalGroupsPolicy.")},
            ref=f"{CORE}.NodeFeatures",
        ),
        "images": arr(
            obj(
                "An image present on the node.",
                {"names": strings("Names of the image."), "sizeBytes": int64("Size in bytes.")},
                ref=f"{CORE}.ContainerImage",
            ),
            "Images on the node.",
        ),
        "nodeInfo": NODE_SYSTEM_INFO,
        "phase": string("Deprecated."),
        "runtimeHandlers": arr(
            obj(
                "A runtime handler and its features.",
                {
                    "features": obj(
                        "Features of the handler.",
                        {
                            "recursiveReadOnlyMounts": boolean("Supports recursive RO mounts."),
                            "userNamespaces": boolean("Supports user namespaces."),
                        },
                        ref=f"{CORE}.NodeRuntimeHandlerFeatures",
                    ),
                    "name": string("Handler name; empty for the default."),
                },
                ref=f"{CORE}.NodeRuntimeHandler",
            ),
            "Runtime handlers available.",
        ),
        "volumesAttached": arr(
            obj(
                "A volume attached to the node.",
                {"devicePath": string("Device path."), "name": string("Volume name.")},
                required=("name", "devicePath"),
                ref=f"{CORE}.AttachedVolume",
            ),
            "Volumes attached to the node.",
        ),
        "volumesInUse": strings("Volumes in use on the node."),
    },
    ref=f"{CORE}.NodeStatus",
)

NODE = kind_object(
    f"{CORE}.Node",
    "A machine that runs pods.",
    {"spec": NODE_SPEC, "status": NODE_STATUS},
    metadata=OBJECT_META,
)

SERVICE_PORT = obj(
    "A port a service exposes and where it sends traffic.",
    {
        "appProtocol": string("Application protocol, e.g. http or kubernetes.io/h2c."),
        "name": string("Port name; required when there are several ports."),
        "nodePort": integer("Port on every node for NodePort and LoadBalancer services."),
        "port": integer("Port the service listens on."),
        "protocol": string("TCP (default), UDP or SCTP.", enum=("TCP", "UDP", "SCTP")),
        "targetPort": int_or_string(),
    },
    required=("port",),
    ref=f"{CORE}.ServicePort",
)

LOAD_BALANCER_STATUS = obj(
    "Addresses of a load balancer in front of a service.",
    {
        "ingress": arr(
            obj(
                "One ingress point of the load balancer.",
                {
                    "hostname": string("DNS name of the ingress point."),
                    "ip": string("Address of the ingress point."),
                    "ipMode": string("VIP or Proxy: how traffic reaches the pods."),
                    "ports": arr(
                        obj(
                            "Status of one port.",
                            {
                                "error": string("Problem with the port, if any."),
                                "port": integer("Port number."),
                                "protocol": string("TCP, UDP or SCTP."),
                            },
                            required=("port", "protocol"),
                            ref=f"{CORE}.PortStatus",
                        ),
                        "Per-port status.",
                    ),
                },
                ref=f"{CORE}.LoadBalancerIngress",
            ),
            "Ingress points.",
        )
    },
    ref=f"{CORE}.LoadBalancerStatus",
)

SERVICE_SPEC = obj(
    "Desired state of a service: its ports, the pods it selects and how it is exposed.",
    {
        "allocateLoadBalancerNodePorts": boolean("Allocate node ports for LoadBalancer services."),
        "clusterIP": string("Virtual IP of the service; None for a headless service."),
        "clusterIPs": strings("Virtual IPs, one per IP family; the first equals clusterIP."),
        "externalIPs": strings("Extra addresses on which the service accepts traffic."),
        "externalName": string("DNS name returned for type ExternalName."),
        "externalTrafficPolicy": string("Cluster or Local: where external traffic may go."),
        "healthCheckNodePort": integer("Health check port for externalTrafficPolicy=Local."),
        "internalTrafficPolicy": string("Cluster or Local: where in-cluster traffic may go."),
        "ipFamilies": strings("IPv4 and/or IPv6."),
        "ipFamilyPolicy": string("SingleStack, PreferDualStack or RequireDualStack."),
        "loadBalancerClass": string("Load balancer implementation to use."),
        "loadBalancerIP": string("Deprecated: requested load balancer address."),
        "loadBalancerSourceRanges": strings("Client ranges allowed through the load balancer."),
        "ports": arr(
            SERVICE_PORT,
            "Ports the service exposes.",
            list_type="map",
            keys=("port", "protocol"),
            merge_key="port",
            strategy="merge",
        ),
        "publishNotReadyAddresses": boolean("Include not-ready pods in DNS and endpoints."),
        "selector": string_map("Labels of the pods that receive traffic.", map_type="atomic"),
        "sessionAffinity": string("ClientIP or None (default).", enum=("ClientIP", "None")),
        "sessionAffinityConfig": obj(
            "Settings of session affinity.",
            {
                "clientIP": obj(
                    "Settings of ClientIP affinity.",
                    {"timeoutSeconds": integer("Seconds a client sticks to a pod.")},
                    ref=f"{CORE}.ClientIPConfig",
                )
            },
            ref=f"{CORE}.SessionAffinityConfig",
        ),
        "trafficDistribution": string("Preference for routing, e.g. PreferClose."),
        "type": string(
            "ClusterIP (default), NodePort, LoadBalancer or ExternalName.",
            enum=("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
        ),
    },
    ref=f"{CORE}.ServiceSpec",
)

SERVICE = kind_object(
    f"{CORE}.Service",
    "A stable virtual address and DNS name in front of a set of pods.",
    {
        "spec": SERVICE_SPEC,
        "status": obj(
            "Observed state of a service.",
            {
                "conditions": arr(
                    CONDITION,
                    "Current conditions.",
                    list_type="map",
                    keys=("type",),
                    merge_key="type",
                    strategy="merge",
                ),
                "loadBalancer": LOAD_BALANCER_STATUS,
            },
            ref=f"{CORE}.ServiceStatus",
        ),
    },
    metadata=OBJECT_META,
)

ENDPOINT_ADDRESS = obj(
    "One backend address of a service.",
    {
        "hostname": string("Host name of the backend."),
        "ip": string("Address of the backend."),
        "nodeName": string("Node hosting the backend."),
        "targetRef": OBJECT_REFERENCE,
    },
    required=("ip",),
    ref=f"{CORE}.EndpointAddress",
    map_type="atomic",
)

ENDPOINTS = kind_object(
    f"{CORE}.Endpoints",
    "The addresses and ports that implement a service.",
    {
        "subsets": arr(
            obj(
                "Addresses that all share the same ports.",
                {
                    "addresses": arr(ENDPOINT_ADDRESS, "Ready addresses."),
                    "notReadyAddresses": arr(ENDPOINT_ADDRESS, "Addresses not ready yet."),
                    "ports": arr(
                        obj(
                            "A port of the endpoints.",
                            {
                                "appProtocol": string("Application protocol."),
                                "name": string("Name of the matching service port."),
                                "port": integer("Port number."),
                                "protocol": string("TCP, UDP or SCTP."),
                            },
                            required=("port",),
                            ref=f"{CORE}.EndpointPort",
                            map_type="atomic",
                        ),
                        "Ports of the addresses.",
                    ),
                },
                ref=f"{CORE}.EndpointSubset",
            ),
            "Groups of addresses with their ports.",
        )
    },
    metadata=OBJECT_META,
)

CONFIG_MAP = kind_object(
    f"{CORE}.ConfigMap",
    "Configuration data for pods, as key/value pairs.",
    {
        "binaryData": map_of(byte_string(), "Binary values, base64 encoded."),
        "data": string_map("Text values."),
        "immutable": boolean("When true, data can no longer be changed."),
    },
    metadata=OBJECT_META,
)

SECRET = kind_object(
    f"{CORE}.Secret",
    "Sensitive data for pods, such as passwords, tokens and keys.",
    {
        "data": map_of(byte_string(), "Values, base64 encoded."),
        "immutable": boolean("When true, data can no longer be changed."),
        "stringData": string_map("Write-only plain-text values merged into data."),
        "type": string("Kind of secret, e.g. Opaque or kubernetes.io/tls."),
    },
    metadata=OBJECT_META,
)

EVENT = kind_object(
    f"{CORE}.Event",
    "A report of something that happened to an object.",
    {
        "action": string("What was done or failed, e.g. Scheduling."),
        "count": integer("Times this event occurred."),
        "eventTime": micro_time(),
        "firstTimestamp": time(),
        "involvedObject": OBJECT_REFERENCE,
        "lastTimestamp": time(),
        "message": string("Human-readable description."),
        "reason": string("Short CamelCase reason, e.g. FailedScheduling."),
        "related": OBJECT_REFERENCE,
        "reportingComponent": string("Component that reported it, e.g. default-scheduler."),
        "reportingInstance": string("Instance of the component, e.g. a host name."),
        "series": obj(
            "A run of the same event.",
            {"count": integer("Occurrences so far."), "lastObservedTime": micro_time()},
            ref=f"{CORE}.EventSeries",
        ),
        "source": obj(
            "Component that generated the event.",
            {"component": string("Component name."), "host": string("Node name.")},
            ref=f"{CORE}.EventSource",
        ),
        "type": string("Normal or Warning."),
    },
    metadata=OBJECT_META,
    required=("metadata", "involvedObject"),
)

SERVICE_ACCOUNT = kind_object(
    f"{CORE}.ServiceAccount",
    "An identity for processes in pods.",
    {
        "automountServiceAccountToken": boolean("Mount a token into pods by default."),
        "imagePullSecrets": arr(LOCAL_OBJECT_REFERENCE, "Registry credentials for pods."),
        "secrets": arr(
            OBJECT_REFERENCE,
            "Secrets pods using this account may use.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
    },
    metadata=OBJECT_META,
)

BINDING = kind_object(
    f"{CORE}.Binding",
    "Binds a pod to a node (the body of pods/binding).",
    {"target": OBJECT_REFERENCE},
    metadata=OBJECT_META,
    required=("target",),
)
