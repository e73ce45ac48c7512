"""Protobuf descriptors for the other core/v1 kinds (Namespace, ConfigMap, Service, Node, ...).

Field numbers, types and JSON names are facts from Kubernetes k8s.io/api v0.36.3
(`generated.proto` joined with the Go struct tags of `types.go`); the notation
is explained in :mod:`corral.api.protobuf.schema`.
"""

from __future__ import annotations

TABLES: dict[str, dict[str, dict[int, str]]] = {
    "core.v1": {
        "Namespace": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec NamespaceSpec', 3: 'status NamespaceStatus',
        },
        "NamespaceSpec": {1: 'finalizers []string'},
        "NamespaceStatus": {1: 'phase string', 2: 'conditions []NamespaceCondition'},
        "NamespaceCondition": {
            1: 'type string *', 2: 'status string *', 4: 'lastTransitionTime meta.v1.Time',
            5: 'reason string', 6: 'message string',
        },
        "ConfigMap": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'data map<string,string>',
            3: 'binaryData map<string,bytes>', 4: 'immutable bool *',
        },
        "Secret": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'data map<string,bytes>', 3: 'type string',
            4: 'stringData map<string,string>', 5: 'immutable bool *',
        },
        "Service": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec ServiceSpec', 3: 'status ServiceStatus'},
        "ServiceSpec": {
            1: 'ports []ServicePort', 2: 'selector map<string,string>', 3: 'clusterIP string',
            4: 'type string', 5: 'externalIPs []string', 7: 'sessionAffinity string',
            8: 'loadBalancerIP string', 9: 'loadBalancerSourceRanges []string',
            10: 'externalName string', 11: 'externalTrafficPolicy string',
            12: 'healthCheckNodePort int32', 13: 'publishNotReadyAddresses bool',
            14: 'sessionAffinityConfig SessionAffinityConfig', 17: 'ipFamilyPolicy string *',
            18: 'clusterIPs []string', 19: 'ipFamilies []string',
            20: 'allocateLoadBalancerNodePorts bool *', 21: 'loadBalancerClass string *',
            22: 'internalTrafficPolicy string *', 23: 'trafficDistribution string *',
        },
        "ServicePort": {
            1: 'name string', 2: 'protocol string', 3: 'port int32 *',
            4: 'targetPort intstr.IntOrString', 5: 'nodePort int32', 6: 'appProtocol string *',
        },
        "SessionAffinityConfig": {1: 'clientIP ClientIPConfig'},
        "ClientIPConfig": {1: 'timeoutSeconds int32 *'},
        "ServiceStatus": {1: 'loadBalancer LoadBalancerStatus', 2: 'conditions []meta.v1.Condition'},
        "LoadBalancerStatus": {1: 'ingress []LoadBalancerIngress'},
        "LoadBalancerIngress": {
            1: 'ip string', 2: 'hostname string', 3: 'ipMode string *', 4: 'ports []PortStatus',
        },
        "PortStatus": {1: 'port int32 *', 2: 'protocol string *', 3: 'error string *'},
        "ServiceAccount": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'secrets []ObjectReference',
            3: 'imagePullSecrets []LocalObjectReference', 4: 'automountServiceAccountToken bool *',
        },
        "ObjectReference": {
            1: 'kind string', 2: 'namespace string', 3: 'name string', 4: 'uid string',
            5: 'apiVersion string', 6: 'resourceVersion string', 7: 'fieldPath string',
        },
        "ReplicationController": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec ReplicationControllerSpec',
            3: 'status ReplicationControllerStatus',
        },
        "ReplicationControllerSpec": {
            1: 'replicas int32 *', 2: 'selector map<string,string>', 3: 'template PodTemplateSpec',
            4: 'minReadySeconds int32',
        },
        "ReplicationControllerStatus": {
            1: 'replicas int32 *', 2: 'fullyLabeledReplicas int32', 3: 'observedGeneration int64',
            4: 'readyReplicas int32', 5: 'availableReplicas int32',
            6: 'conditions []ReplicationControllerCondition',
        },
        "ReplicationControllerCondition": {
            1: 'type string *', 2: 'status string *', 3: 'lastTransitionTime meta.v1.Time',
            4: 'reason string', 5: 'message string',
        },
        "Node": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec NodeSpec', 3: 'status NodeStatus'},
        "NodeSpec": {
            1: 'podCIDR string', 2: 'externalID string', 3: 'providerID string',
            4: 'unschedulable bool', 5: 'taints []Taint', 6: 'configSource NodeConfigSource',
            7: 'podCIDRs []string',
        },
        "Taint": {
            1: 'key string *', 2: 'value string', 3: 'effect string *', 4: 'timeAdded meta.v1.Time',
        },
        "NodeConfigSource": {2: 'configMap ConfigMapNodeConfigSource'},
        "ConfigMapNodeConfigSource": {
            1: 'namespace string *', 2: 'name string *', 3: 'uid string', 4: 'resourceVersion string',
            5: 'kubeletConfigKey string *',
        },
        "NodeStatus": {
            1: 'capacity map<string,resource.Quantity>',
            2: 'allocatable map<string,resource.Quantity>', 3: 'phase string',
            4: 'conditions []NodeCondition', 5: 'addresses []NodeAddress',
            6: 'daemonEndpoints NodeDaemonEndpoints', 7: 'nodeInfo NodeSystemInfo',
            8: 'images []ContainerImage', 9: 'volumesInUse []string',
            10: 'volumesAttached []AttachedVolume', 11: 'config NodeConfigStatus',
            12: 'runtimeHandlers []NodeRuntimeHandler', 13: 'features NodeFeatures',
            14: 'declaredFeatures []string',
        },
        "NodeCondition": {
            1: 'type string *', 2: 'status string *', 3: 'lastHeartbeatTime meta.v1.Time',
            4: 'lastTransitionTime meta.v1.Time', 5: 'reason string', 6: 'message string',
        },
        "NodeAddress": {1: 'type string *', 2: 'address string *'},
        "NodeDaemonEndpoints": {1: 'kubeletEndpoint DaemonEndpoint'},
        "DaemonEndpoint": {1: 'Port int32 *'},
        "NodeSystemInfo": {
            1: 'machineID string *', 2: 'systemUUID string *', 3: 'bootID string *',
            4: 'kernelVersion string *', 5: 'osImage string *', 6: 'containerRuntimeVersion string *',
            7: 'kubeletVersion string *', 8: 'kubeProxyVersion string *',
            9: 'operatingSystem string *', 10: 'architecture string *', 11: 'swap NodeSwapStatus',
        },
        "NodeSwapStatus": {1: 'capacity int64 *'},
        "ContainerImage": {1: 'names []string', 2: 'sizeBytes int64'},
        "AttachedVolume": {1: 'name string *', 2: 'devicePath string *'},
        "NodeConfigStatus": {
            1: 'assigned NodeConfigSource', 2: 'active NodeConfigSource',
            3: 'lastKnownGood NodeConfigSource', 4: 'error string',
        },
        "NodeRuntimeHandler": {1: 'name string *', 2: 'features NodeRuntimeHandlerFeatures'},
        "NodeRuntimeHandlerFeatures": {1: 'recursiveReadOnlyMounts bool *', 2: 'userNamespaces bool *'},
        "NodeFeatures": {1: 'supplementalGroupsPolicy bool *'},
        "Endpoints": {1: 'metadata meta.v1.ObjectMeta', 2: 'subsets []EndpointSubset'},
        "EndpointSubset": {
            1: 'addresses []EndpointAddress', 2: 'notReadyAddresses []EndpointAddress',
            3: 'ports []EndpointPort',
        },
        "EndpointAddress": {
            1: 'ip string *', 2: 'targetRef ObjectReference', 3: 'hostname string',
            4: 'nodeName string *',
        },
        "EndpointPort": {
            1: 'name string', 2: 'port int32 *', 3: 'protocol string', 4: 'appProtocol string *',
        },
        "Event": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'involvedObject ObjectReference', 3: 'reason string',
            4: 'message string', 5: 'source EventSource', 6: 'firstTimestamp meta.v1.Time',
            7: 'lastTimestamp meta.v1.Time', 8: 'count int32', 9: 'type string',
            10: 'eventTime meta.v1.MicroTime', 11: 'series EventSeries', 12: 'action string',
            13: 'related ObjectReference', 14: 'reportingComponent string *',
            15: 'reportingInstance string *',
        },
        "EventSource": {1: 'component string', 2: 'host string'},
        "EventSeries": {1: 'count int32', 2: 'lastObservedTime meta.v1.MicroTime'},
        "Binding": {1: 'metadata meta.v1.ObjectMeta', 2: 'target ObjectReference'},
        "ResourceQuota": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec ResourceQuotaSpec',
            3: 'status ResourceQuotaStatus',
        },
        "ResourceQuotaSpec": {
            1: 'hard map<string,resource.Quantity>', 2: 'scopes []string',
            3: 'scopeSelector ScopeSelector',
        },
        "ScopeSelector": {1: 'matchExpressions []ScopedResourceSelectorRequirement'},
        "ScopedResourceSelectorRequirement": {
            1: 'scopeName string *', 2: 'operator string *', 3: 'values []string',
        },
        "ResourceQuotaStatus": {
            1: 'hard map<string,resource.Quantity>', 2: 'used map<string,resource.Quantity>',
        },
        "LimitRange": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec LimitRangeSpec'},
        "LimitRangeSpec": {1: 'limits []LimitRangeItem'},
        "LimitRangeItem": {
            1: 'type string *', 2: 'max map<string,resource.Quantity>',
            3: 'min map<string,resource.Quantity>', 4: 'default map<string,resource.Quantity>',
            5: 'defaultRequest map<string,resource.Quantity>',
            6: 'maxLimitRequestRatio map<string,resource.Quantity>',
        },
    },
}
