"""Descriptor tables of the Kubernetes protobuf messages corral decodes, one module per group."""

from __future__ import annotations

from corral.api.protobuf.descriptors import (
    apps_v1,
    authorization_v1,
    batch_v1,
    core_v1,
    core_v1_pod,
    core_v1_volumes,
    meta,
    other,
    wellknown,
)

ALL_TABLES = (
    wellknown.TABLES,
    meta.TABLES,
    core_v1_pod.TABLES,
    core_v1_volumes.TABLES,
    core_v1.TABLES,
    apps_v1.TABLES,
    batch_v1.TABLES,
    other.TABLES,
    authorization_v1.TABLES,
)
