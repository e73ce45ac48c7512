"""coordination.k8s.io/v1 Lease: node heartbeats and leader election."""

from __future__ import annotations

from corral.resources.schemas.dsl import integer, kind_object, micro_time, obj, string
from corral.resources.schemas.meta import OBJECT_META

LEASE = kind_object(
    "io.k8s.api.coordination.v1.Lease",
    "A time-limited claim: who holds it, since when, and until it must be renewed.",
    {
        "spec": obj(
            "The claim: holder, duration and renewals.",
            {
                "acquireTime": micro_time(),
                "holderIdentity": string("Identity of the current holder."),
                "leaseDurationSeconds": integer("Seconds a holder waits before taking over."),
                "leaseTransitions": integer("Times the lease changed holder."),
                "preferredHolder": string("Holder that should take the lease next."),
                "renewTime": micro_time(),
                "strategy": string("How the next holder is chosen, e.g. OldestEmulationVersion."),
            },
            ref="io.k8s.api.coordination.v1.LeaseSpec",
        )
    },
    metadata=OBJECT_META,
)
