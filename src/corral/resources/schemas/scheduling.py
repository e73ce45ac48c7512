"""core/v1 placement types: node and pod (anti-)affinity, tolerations and
topology spread constraints."""

from __future__ import annotations

from corral.resources.schema import Schema
from corral.resources.schemas.dsl import CORE, arr, int64, integer, obj, string, strings
from corral.resources.schemas.meta import LABEL_SELECTOR

NODE_SELECTOR_REQUIREMENT = obj(
    "A node label or field key, an operator (In, NotIn, Exists, DoesNotExist, Gt, Lt) and values.",
    {
        "key": string("Label or field key."),
        "operator": string("In, NotIn, Exists, DoesNotExist, Gt or Lt."),
        "values": strings("Values; one integer for Gt and Lt, none for Exists."),
    },
    required=("key", "operator"),
    ref=f"{CORE}.NodeSelectorRequirement",
)

NODE_SELECTOR_TERM = obj(
    "Node requirements that must all hold.",
    {
        "matchExpressions": arr(NODE_SELECTOR_REQUIREMENT, "Requirements on node labels."),
        "matchFields": arr(NODE_SELECTOR_REQUIREMENT, "Requirements on node fields."),
    },
    ref=f"{CORE}.NodeSelectorTerm",
    map_type="atomic",
)

NODE_SELECTOR = obj(
    "Terms of which at least one must hold for a node to match.",
    {"nodeSelectorTerms": arr(NODE_SELECTOR_TERM, "The terms, ORed.")},
    required=("nodeSelectorTerms",),
    ref=f"{CORE}.NodeSelector",
    map_type="atomic",
)

NODE_AFFINITY = obj(
    "Rules on which nodes the pod may or should run.",
    {
        "preferredDuringSchedulingIgnoredDuringExecution": arr(
            obj(
                "A weighted node preference.",
                {
                    "preference": NODE_SELECTOR_TERM,
                    "weight": integer("Weight 1-100 added to matching nodes' scores."),
                },
                required=("weight", "preference"),
                ref=f"{CORE}.PreferredSchedulingTerm",
            ),
            "Preferences that raise a node's score.",
        ),
        "requiredDuringSchedulingIgnoredDuringExecution": NODE_SELECTOR,
    },
    ref=f"{CORE}.NodeAffinity",
)

POD_AFFINITY_TERM = obj(
    "Pods (by labels and namespaces) that must or must not share a topology domain.",
    {
        "labelSelector": LABEL_SELECTOR,
        "matchLabelKeys": strings("Label keys whose values from this pod join the selector."),
        "mismatchLabelKeys": strings("Label keys whose values must differ from this pod's."),
        "namespaceSelector": LABEL_SELECTOR,
        "namespaces": strings("Namespaces to look in; the pod's own when empty."),
        "topologyKey": string("Node label defining the domain, e.g. kubernetes.io/hostname."),
    },
    required=("topologyKey",),
    ref=f"{CORE}.PodAffinityTerm",
)

WEIGHTED_POD_AFFINITY_TERM = obj(
    "A weighted pod (anti-)affinity preference.",
    {
        "podAffinityTerm": POD_AFFINITY_TERM,
        "weight": integer("Weight 1-100."),
    },
    required=("weight", "podAffinityTerm"),
    ref=f"{CORE}.WeightedPodAffinityTerm",
)


def _pod_affinity(kind: str, description: str) -> Schema:
    return obj(
        description,
        {
            "preferredDuringSchedulingIgnoredDuringExecution": arr(
                WEIGHTED_POD_AFFINITY_TERM, "Preferences that change a node's score."
            ),
            "requiredDuringSchedulingIgnoredDuringExecution": arr(
                POD_AFFINITY_TERM, "Terms that must all hold when the pod is scheduled."
            ),
        },
        ref=f"{CORE}.{kind}",
    )


AFFINITY = obj(
    "Scheduling constraints: node affinity, and affinity or anti-affinity to other pods.",
    {
        "nodeAffinity": NODE_AFFINITY,
        "podAffinity": _pod_affinity("PodAffinity", "Run near pods matching these terms."),
        "podAntiAffinity": _pod_affinity(
            "PodAntiAffinity", "Run away from pods matching these terms."
        ),
    },
    ref=f"{CORE}.Affinity",
)

TOLERATION = obj(
    "Lets the pod run on nodes with a matching taint.",
    {
        "effect": string("Taint effect to match; all effects when empty."),
        "key": string("Taint key to match; all keys when empty with operator Exists."),
        "operator": string("Exists or Equal (default)."),
        "tolerationSeconds": int64("How long a NoExecute taint is tolerated; forever if unset."),
        "value": string("Taint value to match with Equal."),
    },
    ref=f"{CORE}.Toleration",
)

TOPOLOGY_SPREAD_CONSTRAINT = obj(
    "How evenly matching pods must be spread over a topology domain.",
    {
        "labelSelector": LABEL_SELECTOR,
        "matchLabelKeys": strings("Label keys whose values from this pod join the selector."),
        "maxSkew": integer("Largest allowed difference in pod count between domains."),
        "minDomains": integer("Minimum number of eligible domains."),
        "nodeAffinityPolicy": string("Honor or Ignore the pod's node affinity when counting."),
        "nodeTaintsPolicy": string("Honor or Ignore node taints when counting."),
        "topologyKey": string("Node label defining the domain."),
        "whenUnsatisfiable": string("DoNotSchedule or ScheduleAnyway."),
    },
    required=("maxSkew", "topologyKey", "whenUnsatisfiable"),
    ref=f"{CORE}.TopologySpreadConstraint",
)
