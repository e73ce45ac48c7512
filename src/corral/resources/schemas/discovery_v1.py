"""discovery.k8s.io/v1 EndpointSlice: a bounded slice of a Service's backends."""

from __future__ import annotations

from corral.resources.schemas.dsl import (
    arr,
    boolean,
    integer,
    kind_object,
    obj,
    string,
    string_map,
    strings,
)
from corral.resources.schemas.meta import OBJECT_META
from corral.resources.schemas.refs import OBJECT_REFERENCE

DISCOVERY = "io.k8s.api.discovery.v1"

ENDPOINT_CONDITIONS = obj(
    "The state of one endpoint.",
    {
        "ready": boolean("The endpoint may receive new connections."),
        "serving": boolean("The endpoint answers, whether or not it is terminating."),
        "terminating": boolean("The endpoint is shutting down."),
    },
    ref=f"{DISCOVERY}.EndpointConditions",
)

FOR_ZONE = obj("A zone an endpoint is meant for.", {"name": string("Zone name.")},
               required=("name",), ref=f"{DISCOVERY}.ForZone")

ENDPOINT = obj(
    "One backend: its addresses and where it runs.",
    {
        "addresses": strings("Addresses of the backend (one, in practice).", list_type="set"),
        "conditions": ENDPOINT_CONDITIONS,
        "deprecatedTopology": string_map("Deprecated topology labels."),
        "hints": obj(
            "Topology hints for the proxy.",
            {
                "forNodes": arr(
                    obj("A node an endpoint is meant for.", {"name": string("Node name.")},
                        required=("name",), ref=f"{DISCOVERY}.ForNode"),
                    "Nodes this endpoint should serve.",
                ),
                "forZones": arr(FOR_ZONE, "Zones this endpoint should serve."),
            },
            ref=f"{DISCOVERY}.EndpointHints",
        ),
        "hostname": string("Host name of the backend (headless DNS records)."),
        "nodeName": string("Node hosting the backend."),
        "targetRef": OBJECT_REFERENCE,
        "zone": string("Zone of the backend."),
    },
    required=("addresses",),
    ref=f"{DISCOVERY}.Endpoint",
)

ENDPOINT_PORT = obj(
    "A port every endpoint of the slice listens on.",
    {
        "appProtocol": string("Application protocol."),
        "name": string("Name of the matching service port."),
        "port": integer("Port number, or unset for all ports."),
        "protocol": string("TCP, UDP or SCTP."),
    },
    ref=f"{DISCOVERY}.EndpointPort",
    map_type="atomic",
)

ENDPOINT_SLICE = kind_object(
    f"{DISCOVERY}.EndpointSlice",
    "A subset of the endpoints that implement a service.",
    {
        "addressType": string("IPv4, IPv6 or FQDN (immutable).", enum=("FQDN", "IPv4", "IPv6")),
        "endpoints": arr(ENDPOINT, "The backends of this slice."),
        "ports": arr(ENDPOINT_PORT, "The ports of every backend of this slice."),
    },
    metadata=OBJECT_META,
    required=("addressType", "endpoints"),
)
