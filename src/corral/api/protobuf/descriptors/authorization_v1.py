"""Protobuf descriptors for authorization.k8s.io/v1 reviews and authentication.k8s.io/v1
TokenRequest and SelfSubjectReview (what ``kubectl auth can-i``, ``auth whoami`` and
``create token`` send).

Field numbers and JSON names are facts from Kubernetes k8s.io/api
(``authorization/v1/generated.proto``, ``authentication/v1/generated.proto``);
the notation is explained in :mod:`corral.api.protobuf.schema`. The ``extra``
maps of user info (values are ExtraValue messages) are not described, so a
body carrying them is refused rather than silently losing them.
"""

from __future__ import annotations

TABLES: dict[str, dict[str, dict[int, str]]] = {
    "authorization.v1": {
        "SelfSubjectAccessReview": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec SelfSubjectAccessReviewSpec',
            3: 'status SubjectAccessReviewStatus',
        },
        "SelfSubjectAccessReviewSpec": {
            1: 'resourceAttributes ResourceAttributes', 2: 'nonResourceAttributes NonResourceAttributes',
        },
        "SubjectAccessReview": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec SubjectAccessReviewSpec',
            3: 'status SubjectAccessReviewStatus',
        },
        "SubjectAccessReviewSpec": {
            1: 'resourceAttributes ResourceAttributes', 2: 'nonResourceAttributes NonResourceAttributes',
            3: 'user string', 4: 'groups []string', 6: 'uid string',
        },
        "ResourceAttributes": {
            1: 'namespace string', 2: 'verb string', 3: 'group string', 4: 'version string',
            5: 'resource string', 6: 'subresource string', 7: 'name string',
            8: 'fieldSelector FieldSelectorAttributes', 9: 'labelSelector LabelSelectorAttributes',
        },
        "FieldSelectorAttributes": {1: 'rawSelector string'},
        "LabelSelectorAttributes": {1: 'rawSelector string'},
        "NonResourceAttributes": {1: 'path string', 2: 'verb string'},
        "SubjectAccessReviewStatus": {
            1: 'allowed bool *', 2: 'reason string', 3: 'evaluationError string', 4: 'denied bool',
        },
        "SelfSubjectRulesReview": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec SelfSubjectRulesReviewSpec',
            3: 'status SubjectRulesReviewStatus',
        },
        "SubjectRulesReviewStatus": {
            1: 'resourceRules []ResourceRule', 2: 'nonResourceRules []NonResourceRule',
            3: 'incomplete bool *', 4: 'evaluationError string',
        },
        "ResourceRule": {1: 'verbs []string', 2: 'apiGroups []string', 3: 'resources []string',
                         4: 'resourceNames []string'},
        "NonResourceRule": {1: 'verbs []string', 2: 'nonResourceURLs []string'},
        "SelfSubjectRulesReviewSpec": {1: 'namespace string'},
    },
    "authentication.v1": {
        "TokenRequest": {
            1: 'metadata meta.v1.ObjectMeta', 2: 'spec TokenRequestSpec', 3: 'status TokenRequestStatus',
        },
        "TokenRequestStatus": {1: 'token string', 2: 'expirationTimestamp meta.v1.Time'},
        "TokenRequestSpec": {
            1: 'audiences []string', 3: 'boundObjectRef BoundObjectReference',
            4: 'expirationSeconds int64 *',
        },
        "BoundObjectReference": {1: 'kind string', 2: 'apiVersion string', 3: 'name string', 4: 'uid string'},
        "SelfSubjectReview": {1: 'metadata meta.v1.ObjectMeta', 2: 'status SelfSubjectReviewStatus'},
        "SelfSubjectReviewStatus": {1: 'userInfo UserInfo'},
        "UserInfo": {1: 'username string', 2: 'uid string', 3: 'groups []string'},
    },
}
