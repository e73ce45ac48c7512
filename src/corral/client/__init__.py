"""corral.client: the one API client every component uses.

``ApiClient`` for requests and watches, ``Informer`` for list+watch caches,
``WorkQueue`` for controllers' keys, ``EventRecorder`` for Events.
"""

from corral.client.api import ApiClient
from corral.client.cache import Cache, object_key, split_key
from corral.client.events import EventRecorder
from corral.client.informer import Informer, wait_for_sync
from corral.client.workqueue import QueueShutDown, WorkQueue

__all__ = [
    "ApiClient",
    "Cache",
    "EventRecorder",
    "Informer",
    "QueueShutDown",
    "WorkQueue",
    "object_key",
    "split_key",
    "wait_for_sync",
]
