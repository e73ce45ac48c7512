"""Create-only kinds that ask the server a question and are never stored:
access reviews (authorization.k8s.io/v1) and SelfSubjectReview
(authentication.k8s.io/v1). The API layer answers them (``api/authz``)."""

from __future__ import annotations

from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN
from corral.resources.types import ResourceType

AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"


def _review(group: str, kind: str, schema: Schema) -> ResourceType:
    return ResourceType(
        group=group, version="v1", kind=kind, plural=f"{kind.lower()}s", singular=kind.lower(),
        namespaced=False, schema=schema, verbs=("create",), columns=(NAME_COLUMN, AGE_COLUMN),
        extra={"virtual": True},
    )


def subject_access_review_type(schema: Schema) -> ResourceType:
    return _review(AUTHORIZATION, "SubjectAccessReview", schema)


def self_subject_access_review_type(schema: Schema) -> ResourceType:
    return _review(AUTHORIZATION, "SelfSubjectAccessReview", schema)


def self_subject_rules_review_type(schema: Schema) -> ResourceType:
    return _review(AUTHORIZATION, "SelfSubjectRulesReview", schema)


def self_subject_review_type(schema: Schema) -> ResourceType:
    return _review(AUTHENTICATION, "SelfSubjectReview", schema)
