"""Reading Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``)."""

from __future__ import annotations

from corral.api.protobuf.decode import (
    MAX_BODY_BYTES,
    PROTOBUF_CONTENT_TYPE,
    decode_k8s_protobuf,
    decode_object,
)

__all__ = ["MAX_BODY_BYTES", "PROTOBUF_CONTENT_TYPE", "decode_k8s_protobuf", "decode_object"]
