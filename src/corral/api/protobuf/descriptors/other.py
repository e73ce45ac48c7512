"""Protobuf descriptors for coordination, certificates, policy, autoscaling, rbac, scheduling, networking, discovery and events (v1).

Field numbers, types and JSON names are facts from Kubernetes k8s.io/api v0.36.3
(`generated.proto` joined with the Go struct tags of `types.go`); the notation
is explained in :mod:`corral.api.protobuf.schema`.
"""

from __future__ import annotations

TABLES: dict[str, dict[str, dict[int, str]]] = {
    "coordination.v1": {
        "Lease": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec LeaseSpec'},
        "LeaseSpec": {
            1: 'holderIdentity string *', 2: 'leaseDurationSeconds int32 *',
            3: 'acquireTime meta.v1.MicroTime', 4: 'renewTime meta.v1.MicroTime',
            5: 'leaseTransitions int32 *', 6: 'strategy string *', 7: 'preferredHolder string *',
        },
    },
    # spec.extra (map of ExtraValue messages) is not described, as in authorization_v1.
    "certificates.v1": {
        "CertificateSigningRequest": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec CertificateSigningRequestSpec',
            3: 'status CertificateSigningRequestStatus',
        },
        "CertificateSigningRequestSpec": {
            1: 'request bytes', 2: 'username string', 3: 'uid string', 4: 'groups []string',
            5: 'usages []string', 7: 'signerName string *', 8: 'expirationSeconds int32 *',
        },
        "CertificateSigningRequestStatus": {1: 'conditions []CertificateSigningRequestCondition', 2: 'certificate bytes'},
        "CertificateSigningRequestCondition": {
            1: 'type string *', 6: 'status string *', 2: 'reason string', 3: 'message string',
            4: 'lastUpdateTime meta.v1.Time', 5: 'lastTransitionTime meta.v1.Time',
        },
    },
    "policy.v1": {
        "Eviction": {1: 'metadata meta.v1.ObjectMeta', 2: 'deleteOptions meta.v1.DeleteOptions'},
        "PodDisruptionBudget": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec PodDisruptionBudgetSpec',
            3: 'status PodDisruptionBudgetStatus',
        },
        "PodDisruptionBudgetSpec": {
            1: 'minAvailable intstr.IntOrString', 2: 'selector meta.v1.LabelSelector',
            3: 'maxUnavailable intstr.IntOrString', 4: 'unhealthyPodEvictionPolicy string *',
        },
        "PodDisruptionBudgetStatus": {
            1: 'observedGeneration int64', 2: 'disruptedPods map<string,meta.v1.Time>',
            3: 'disruptionsAllowed int32 *', 4: 'currentHealthy int32 *', 5: 'desiredHealthy int32 *',
            6: 'expectedPods int32 *', 7: 'conditions []meta.v1.Condition',
        },
    },
    "autoscaling.v1": {
        "Scale": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec ScaleSpec', 3: 'status ScaleStatus'},
        "ScaleSpec": {1: 'replicas int32'},
        "ScaleStatus": {1: 'replicas int32 *', 2: 'selector string'},
        "HorizontalPodAutoscaler": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec HorizontalPodAutoscalerSpec',
            3: 'status HorizontalPodAutoscalerStatus',
        },
        "HorizontalPodAutoscalerSpec": {
            1: 'scaleTargetRef CrossVersionObjectReference', 2: 'minReplicas int32 *',
            3: 'maxReplicas int32 *', 4: 'targetCPUUtilizationPercentage int32 *',
        },
        "CrossVersionObjectReference": {1: 'kind string *', 2: 'name string *', 3: 'apiVersion string'},
        "HorizontalPodAutoscalerStatus": {
            1: 'observedGeneration int64 *', 2: 'lastScaleTime meta.v1.Time',
            3: 'currentReplicas int32 *', 4: 'desiredReplicas int32 *',
            5: 'currentCPUUtilizationPercentage int32 *',
        },
    },
    "rbac.v1": {
        "Role": {1: 'metadata meta.v1.ObjectMeta', 2: 'rules []PolicyRule'},
        "PolicyRule": {
            1: 'verbs []string', 2: 'apiGroups []string', 3: 'resources []string',
            4: 'resourceNames []string', 5: 'nonResourceURLs []string',
        },
        "ClusterRole": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'rules []PolicyRule',
            3: 'aggregationRule AggregationRule',
        },
        "AggregationRule": {1: 'clusterRoleSelectors []meta.v1.LabelSelector'},
        "RoleBinding": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'subjects []Subject', 3: 'roleRef RoleRef',
        },
        "Subject": {
            1: 'kind string *', 2: 'apiGroup string', 3: 'name string *', 4: 'namespace string',
        },
        "RoleRef": {1: 'apiGroup string *', 2: 'kind string *', 3: 'name string *'},
        "ClusterRoleBinding": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'subjects []Subject', 3: 'roleRef RoleRef',
        },
    },
    "scheduling.v1": {
        "PriorityClass": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'value int32 *', 3: 'globalDefault bool',
            4: 'description string', 5: 'preemptionPolicy string *',
        },
    },
    "networking.v1": {
        "Ingress": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec IngressSpec', 3: 'status IngressStatus'},
        "IngressSpec": {
            1: 'defaultBackend IngressBackend', 2: 'tls []IngressTLS', 3: 'rules []IngressRule',
            4: 'ingressClassName string *',
        },
        "IngressBackend": {
            3: 'resource core.v1.TypedLocalObjectReference', 4: 'service IngressServiceBackend',
        },
        "IngressServiceBackend": {1: 'name string *', 2: 'port ServiceBackendPort'},
        "ServiceBackendPort": {1: 'name string', 2: 'number int32'},
        "IngressTLS": {1: 'hosts []string', 2: 'secretName string'},
        "IngressRule": {1: 'host string', 2: 'ingressRuleValue IngressRuleValue inline'},
        "IngressRuleValue": {1: 'http HTTPIngressRuleValue'},
        "HTTPIngressRuleValue": {1: 'paths []HTTPIngressPath'},
        "HTTPIngressPath": {1: 'path string', 2: 'backend IngressBackend', 3: 'pathType string *'},
        "IngressStatus": {1: 'loadBalancer IngressLoadBalancerStatus'},
        "IngressLoadBalancerStatus": {1: 'ingress []IngressLoadBalancerIngress'},
        "IngressLoadBalancerIngress": {
            1: 'ip string', 2: 'hostname string', 4: 'ports []IngressPortStatus',
        },
        "IngressPortStatus": {1: 'port int32 *', 2: 'protocol string *', 3: 'error string *'},
        "IngressClass": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec IngressClassSpec'},
        "IngressClassSpec": {1: 'controller string', 2: 'parameters IngressClassParametersReference'},
        "IngressClassParametersReference": {
            1: 'apiGroup string *', 2: 'kind string *', 3: 'name string *', 4: 'scope string *',
            5: 'namespace string *',
        },
        "NetworkPolicy": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec NetworkPolicySpec'},
        "NetworkPolicySpec": {
            1: 'podSelector meta.v1.LabelSelector', 2: 'ingress []NetworkPolicyIngressRule',
            3: 'egress []NetworkPolicyEgressRule', 4: 'policyTypes []string',
        },
        "NetworkPolicyIngressRule": {1: 'ports []NetworkPolicyPort', 2: 'from []NetworkPolicyPeer'},
        "NetworkPolicyPort": {
            1: 'protocol string *', 2: 'port intstr.IntOrString', 3: 'endPort int32 *',
        },
        "NetworkPolicyPeer": {
            1: 'podSelector meta.v1.LabelSelector', 2: 'namespaceSelector meta.v1.LabelSelector',
            3: 'ipBlock IPBlock',
        },
        "IPBlock": {1: 'cidr string *', 2: 'except []string'},
        "NetworkPolicyEgressRule": {1: 'ports []NetworkPolicyPort', 2: 'to []NetworkPolicyPeer'},
    },
    "discovery.v1": {
        "EndpointSlice": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'endpoints []Endpoint', 3: 'ports []EndpointPort',
            4: 'addressType string *',
        },
        "Endpoint": {
            1: 'addresses []string', 2: 'conditions EndpointConditions', 3: 'hostname string *',
            4: 'targetRef core.v1.ObjectReference', 5: 'deprecatedTopology map<string,string>',
            6: 'nodeName string *', 7: 'zone string *', 8: 'hints EndpointHints',
        },
        "EndpointConditions": {1: 'ready bool *', 2: 'serving bool *', 3: 'terminating bool *'},
        "EndpointHints": {1: 'forZones []ForZone', 2: 'forNodes []ForNode'},
        "ForZone": {1: 'name string *'},
        "ForNode": {1: 'name string *'},
        "EndpointPort": {
            1: 'name string *', 2: 'protocol string *', 3: 'port int32 *', 4: 'appProtocol string *',
        },
    },
    "events.v1": {
        "Event": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'eventTime meta.v1.MicroTime',
            3: 'series EventSeries', 4: 'reportingController string', 5: 'reportingInstance string',
            6: 'action string', 7: 'reason string', 8: 'regarding core.v1.ObjectReference',
            9: 'related core.v1.ObjectReference', 10: 'note string', 11: 'type string',
            12: 'deprecatedSource core.v1.EventSource', 13: 'deprecatedFirstTimestamp meta.v1.Time',
            14: 'deprecatedLastTimestamp meta.v1.Time', 15: 'deprecatedCount int32',
        },
        "EventSeries": {1: 'count int32 *', 2: 'lastObservedTime meta.v1.MicroTime'},
    },
}
