"""core/v1 PodStatus and the Pod kind itself."""

from __future__ import annotations

from corral.resources.schemas.container import RESOURCE_REQUIREMENTS
from corral.resources.schemas.dsl import (
    CORE,
    arr,
    int64,
    kind_object,
    obj,
    quantity,
    resource_list,
    string,
    strings,
    time,
)
from corral.resources.schemas.meta import OBJECT_META
from corral.resources.schemas.pod import CONTAINER_STATUS, POD_SPEC

POD_CONDITION = obj(
    "One aspect of a pod's state: PodScheduled, Initialized, ContainersReady, Ready, ...",
    {
        "lastProbeTime": time(),
        "lastTransitionTime": time(),
        "message": string("Details of the last transition."),
        "observedGeneration": int64("metadata.generation the condition was set for."),
        "reason": string("CamelCase reason of the last transition."),
        "status": string("True, False or Unknown."),
        "type": string("Condition type."),
    },
    required=("type", "status"),
    ref=f"{CORE}.PodCondition",
)

_IP = {"ip": string("An IP address.")}

POD_STATUS = obj(
    "Observed state of a pod: phase, conditions, addresses and container statuses.",
    {
        "allocatedResources": resource_list("Resources allocated to the pod."),
        "conditions": arr(
            POD_CONDITION,
            "Current conditions of the pod.",
            list_type="map",
            keys=("type",),
            merge_key="type",
            strategy="merge",
        ),
        "containerStatuses": arr(CONTAINER_STATUS, "Status of each app container."),
        "ephemeralContainerStatuses": arr(CONTAINER_STATUS, "Status of each ephemeral container."),
        "extendedResourceClaimStatus": obj(
            "The claim made for the pod's extended resources.",
            {
                "requestMappings": arr(
                    obj(
                        "Which claim request serves a container's extended resource.",
                        {
                            "containerName": string("Container name."),
                            "requestName": string("Request in the claim."),
                            "resourceName": string("Extended resource name."),
                        },
                        required=("containerName", "resourceName", "requestName"),
                        ref=f"{CORE}.ContainerExtendedResourceRequest",
                    ),
                    "Container to request mappings.",
                ),
                "resourceClaimName": string("Name of the generated claim."),
            },
            required=("requestMappings", "resourceClaimName"),
            ref=f"{CORE}.PodExtendedResourceClaimStatus",
        ),
        "hostIP": string("Primary address of the node the pod runs on."),
        "hostIPs": arr(
            obj("An address of the pod's node.", _IP, required=("ip",), ref=f"{CORE}.HostIP"),
            "Addresses of the node; the first equals hostIP.",
            merge_key="ip",
            strategy="merge",
        ),
        "initContainerStatuses": arr(CONTAINER_STATUS, "Status of each init container."),
        "message": string("Why the pod is in its state."),
        "nodeAllocatableResourceClaimStatuses": arr(
            obj(
                "Node-allocatable resources a claim provides.",
                {
                    "containers": strings("Containers using the claim."),
                    "mapping": arr(
                        obj(
                            "One mapped resource.",
                            {"name": string("Resource name."), "quantity": quantity()},
                            ref=f"{CORE}.NodeAllocatableMappedResources",
                        ),
                        "Mapped resources.",
                    ),
                    "overhead": arr(
                        obj(
                            "Overhead of one resource.",
                            {
                                "name": string("Resource name."),
                                "perContainer": quantity(),
                                "perPod": quantity(),
                            },
                            ref=f"{CORE}.NodeAllocatableOverheadResources",
                        ),
                        "Overheads.",
                    ),
                    "resourceClaimName": string("Claim name."),
                },
                ref=f"{CORE}.NodeAllocatableResourceClaimStatus",
            ),
            "Node-allocatable resources from claims.",
        ),
        "nominatedNodeName": string("Node the pod may run on once preemption completes."),
        "observedGeneration": int64("metadata.generation this status reflects."),
        "phase": string(
            "Pending, Running, Succeeded, Failed or Unknown.",
            enum=("Pending", "Running", "Succeeded", "Failed", "Unknown"),
        ),
        "podIP": string("Primary address of the pod."),
        "podIPs": arr(
            obj("An address of the pod.", _IP, required=("ip",), ref=f"{CORE}.PodIP"),
            "Addresses of the pod; the first equals podIP.",
            list_type="map",
            keys=("ip",),
            merge_key="ip",
            strategy="merge",
        ),
        "qosClass": string("Guaranteed, Burstable or BestEffort."),
        "reason": string("CamelCase reason for the state, e.g. Evicted."),
        "resize": string("State of a requested resize."),
        "resourceClaimStatuses": arr(
            obj(
                "The ResourceClaim generated for a pod claim.",
                {
                    "name": string("Name of the claim in the pod spec."),
                    "resourceClaimName": string("Name of the generated ResourceClaim."),
                },
                required=("name",),
                ref=f"{CORE}.PodResourceClaimStatus",
            ),
            "Generated resource claims.",
            list_type="map",
            keys=("name",),
            merge_key="name",
            strategy="merge,retainKeys",
        ),
        "resources": RESOURCE_REQUIREMENTS,
        "startTime": time(),
        "volumeHealth": arr(
            obj(
                "Health of one volume.",
                {
                    "healthConditions": arr(
                        obj(
                            "One health condition.",
                            {
                                "message": string("Details."),
                                "reason": string("Reason."),
                                "status": string("True, False or Unknown."),
                            },
                            ref=f"{CORE}.VolumeHealthCondition",
                        ),
                        "Conditions.",
                    ),
                    "lastTransitionTime": time(),
                    "name": string("Volume name."),
                },
                ref=f"{CORE}.PodVolumeHealth",
            ),
            "Health of the pod's volumes.",
            list_type="map",
            keys=("name",),
        ),
    },
    ref=f"{CORE}.PodStatus",
)

POD = kind_object(
    f"{CORE}.Pod",
    "A group of containers that share a network and volumes and run on one node.",
    {"spec": POD_SPEC, "status": POD_STATUS},
    metadata=OBJECT_META,
)
