"""What every handler shares: the store, the kinds, the clock and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.api.admission import ServiceAllocator
from corral.api.fanout import WatchFanout
from corral.api.objects import ObjectStore
from corral.clock import Clock
from corral.resources.registry import Registry
from corral.store.protocol import Store


@dataclass
class ServerSettings:
    service_cidr: str = "127.43.0.0/16"
    kubelet_client: Any = None
    """api.kubelet_client.KubeletClient: the TLS identity agents are called
    with for logs, exec, port-forward and stats (None: agents are not called)."""
    watch_bookmark_interval: float = 30.0
    max_watch_seconds: int = 1800
    advertise_address: str = "127.0.0.1:6443"
    version: dict[str, str] = field(default_factory=lambda: {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-corral",
        "gitCommit": "corral",
        "gitTreeState": "clean",
        "buildDate": "2026-11-26T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    })


@dataclass
class ServerContext:
    store: Store
    registry: Registry
    clock: Clock
    settings: ServerSettings
    objects: ObjectStore = field(init=False)
    services: ServiceAllocator = field(init=False)
    watch_fanout: WatchFanout = field(init=False)

    def __post_init__(self) -> None:
        self.watch_fanout = WatchFanout()
        self.objects = ObjectStore(self.store, self.clock)
        self.services = ServiceAllocator(self.settings.service_cidr, self.clock)
