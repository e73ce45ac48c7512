"""authorization.k8s.io/v1 review kinds and authentication.k8s.io/v1 TokenRequest
and SelfSubjectReview: request/response bodies that are never stored."""

from __future__ import annotations

from corral.resources.schemas.dsl import (
    arr,
    boolean,
    int64,
    kind_object,
    map_of,
    obj,
    string,
    strings,
    time,
)
from corral.resources.schemas.meta import LABEL_SELECTOR_REQUIREMENT, OBJECT_META

AUTHZ = "io.k8s.api.authorization.v1"
AUTHN = "io.k8s.api.authentication.v1"

RESOURCE_ATTRIBUTES = obj(
    "A resource request to check: verb, group, resource, namespace and name.",
    {
        "fieldSelector": obj("Field selector of a list or watch.", {
            "rawSelector": string(),
            "requirements": arr(obj("A field requirement.", {"key": string(), "operator": string(), "values": strings()},
                                    ref="io.k8s.apimachinery.pkg.apis.meta.v1.FieldSelectorRequirement")),
        }, ref=f"{AUTHZ}.FieldSelectorAttributes"),
        "group": string("API group; \"\" is core, \"*\" all."),
        "labelSelector": obj("Label selector of a list or watch.", {
            "rawSelector": string(), "requirements": arr(LABEL_SELECTOR_REQUIREMENT),
        }, ref=f"{AUTHZ}.LabelSelectorAttributes"),
        "name": string("Name of the object; empty means all."),
        "namespace": string("Namespace; empty means all namespaces (or cluster scope)."),
        "resource": string("Resource plural name, \"*\" all."),
        "subresource": string("Subresource, e.g. log or status."),
        "verb": string("get, list, watch, create, update, patch, delete, deletecollection or \"*\"."),
        "version": string("API version; not used for the decision."),
    },
    ref=f"{AUTHZ}.ResourceAttributes",
)

NON_RESOURCE_ATTRIBUTES = obj(
    "A non-resource request to check: a URL path and a verb.",
    {"path": string("URL path."), "verb": string("HTTP verb in lower case.")},
    ref=f"{AUTHZ}.NonResourceAttributes",
)

REVIEW_STATUS = obj(
    "The decision.",
    {
        "allowed": boolean("Whether the action is allowed."),
        "denied": boolean("Whether the action is denied outright."),
        "evaluationError": string("What went wrong while deciding, if anything."),
        "reason": string("Why the action is allowed or denied."),
    },
    required=("allowed",),
    ref=f"{AUTHZ}.SubjectAccessReviewStatus",
)

_EXTRA = map_of(strings(), "Extra attributes of the user.")

SUBJECT_ACCESS_REVIEW = kind_object(
    f"{AUTHZ}.SubjectAccessReview",
    "Asks whether a given user may perform an action.",
    {
        "spec": obj("The user and action to check.", {
            "extra": _EXTRA,
            "groups": strings("Groups of the user."),
            "nonResourceAttributes": NON_RESOURCE_ATTRIBUTES,
            "resourceAttributes": RESOURCE_ATTRIBUTES,
            "uid": string("UID of the user."),
            "user": string("Name of the user."),
        }, ref=f"{AUTHZ}.SubjectAccessReviewSpec"),
        "status": REVIEW_STATUS,
    },
    metadata=OBJECT_META,
    required=("spec",),
)

SELF_SUBJECT_ACCESS_REVIEW = kind_object(
    f"{AUTHZ}.SelfSubjectAccessReview",
    "Asks whether the requesting user may perform an action (kubectl auth can-i).",
    {
        "spec": obj("The action to check.", {
            "nonResourceAttributes": NON_RESOURCE_ATTRIBUTES,
            "resourceAttributes": RESOURCE_ATTRIBUTES,
        }, ref=f"{AUTHZ}.SelfSubjectAccessReviewSpec"),
        "status": REVIEW_STATUS,
    },
    metadata=OBJECT_META,
    required=("spec",),
)

SELF_SUBJECT_RULES_REVIEW = kind_object(
    f"{AUTHZ}.SelfSubjectRulesReview",
    "Lists what the requesting user may do in a namespace (kubectl auth can-i --list).",
    {
        "spec": obj("The namespace to list rules for.", {"namespace": string()},
                    ref=f"{AUTHZ}.SelfSubjectRulesReviewSpec"),
        "status": obj("The rules.", {
            "evaluationError": string(),
            "incomplete": boolean(),
            "nonResourceRules": arr(obj("", {"nonResourceURLs": strings(), "verbs": strings()},
                                        ref=f"{AUTHZ}.NonResourceRule")),
            "resourceRules": arr(obj("", {
                "apiGroups": strings(), "resourceNames": strings(), "resources": strings(), "verbs": strings(),
            }, ref=f"{AUTHZ}.ResourceRule")),
        }, ref=f"{AUTHZ}.SubjectRulesReviewStatus"),
    },
    metadata=OBJECT_META,
    required=("spec",),
)

USER_INFO = obj(
    "Who a request was authenticated as.",
    {"extra": _EXTRA, "groups": strings(), "uid": string(), "username": string()},
    ref=f"{AUTHN}.UserInfo",
)

TOKEN_REQUEST = kind_object(
    f"{AUTHN}.TokenRequest",
    "Requests a signed token for a ServiceAccount (kubectl create token).",
    {
        "spec": obj("What the token is for.", {
            "attestations": map_of(strings(), "Extra attestations (not used by corral)."),
            "audiences": strings("Audiences the token is valid for; defaults to the API server's."),
            "boundObjectRef": obj("An object (Pod or Secret) whose deletion invalidates the token.", {
                "apiVersion": string(), "kind": string(), "name": string(), "uid": string(),
            }, ref=f"{AUTHN}.BoundObjectReference"),
            "expirationSeconds": int64("Requested lifetime; at least 600."),
        }, ref=f"{AUTHN}.TokenRequestSpec"),
        "status": obj("The issued token.", {
            "expirationTimestamp": time(),
            "token": string("The signed token (a JWT)."),
        }, ref=f"{AUTHN}.TokenRequestStatus"),
    },
    metadata=OBJECT_META,
)

SELF_SUBJECT_REVIEW = kind_object(
    f"{AUTHN}.SelfSubjectReview",
    "Tells the requesting user who the server thinks they are (kubectl auth whoami).",
    {"status": obj("The user.", {"userInfo": USER_INFO}, ref=f"{AUTHN}.SelfSubjectReviewStatus")},
    metadata=OBJECT_META,
)
