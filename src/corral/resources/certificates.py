"""certificates.k8s.io/v1 CertificateSigningRequest (cluster-scoped); the API
layer signs node client certificates on create (``api/csr.py``)."""

from __future__ import annotations

from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, dicts, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType


def validate_csr(new: Obj, old: Obj | None) -> list[FieldCause]:
    from corral.resources import validation as v

    spec = new.get("spec") or {}
    if not isinstance(spec, dict):
        return [v.invalid("spec", spec, "must be an object")]
    causes = []
    if not spec.get("request"):
        causes.append(v.required("spec.request"))
    if not spec.get("signerName"):
        causes.append(v.required("spec.signerName"))
    if old is not None and (old.get("spec") or {}) != spec:
        causes.append(v.invalid("spec", "", "field is immutable"))
    return causes


def _condition(o: Obj, _now: object) -> str:
    types = [str(c.get("type")) for c in dicts(get_path(o, "status", "conditions"))]
    if get_path(o, "status", "certificate"):
        types.append("Issued")
    return ",".join(types) or "Pending"


COLUMNS = (
    NAME_COLUMN,
    AGE_COLUMN,
    Column("SignerName", "string", lambda o, n: str(get_path(o, "spec", "signerName", default="")), "The signer."),
    Column("Requestor", "string", lambda o, n: str(get_path(o, "spec", "username", default="")), "Who asked."),
    Column("Condition", "string", _condition, "Approved, Denied, Failed, Issued or Pending."),
)


def csr_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="certificates.k8s.io", version="v1", kind="CertificateSigningRequest",
        plural="certificatesigningrequests", singular="certificatesigningrequest", namespaced=False,
        schema=schema, short_names=("csr",), subresources=("status", "approval"), has_status=True, columns=COLUMNS,
        validator=validate_csr,
    )
