"""The controller manager: every controller over one set of shared informers."""

from __future__ import annotations

import asyncio
import logging

from corral.client.api import ApiClient
from corral.client.events import EventRecorder
from corral.clock import Clock, RealClock
from corral.controllers.base import Controller
from corral.controllers.cronjob import CronJobController
from corral.controllers.csrcleaner import CsrCleaner
from corral.controllers.daemonset import DaemonSetController
from corral.controllers.deployment import DeploymentController
from corral.controllers.endpoints import EndpointsController
from corral.controllers.garbagecollector import GarbageCollector
from corral.controllers.hpa import HorizontalPodAutoscalerController
from corral.controllers.informers import SharedInformers
from corral.controllers.job import JobController
from corral.controllers.namespace import NamespaceController
from corral.controllers.nodeipam import DEFAULT_CLUSTER_CIDR, NodeIpamController
from corral.controllers.nodelifecycle import NodeLifecycleConfig, NodeLifecycleController
from corral.controllers.pdb import DisruptionController
from corral.controllers.replicaset import ReplicaSetController
from corral.controllers.serviceaccount import ServiceAccountController
from corral.controllers.statefulset import StatefulSetController
from corral.controllers.tokencleaner import BootstrapTokenCleaner

log = logging.getLogger(__name__)


class ControllerManager:
    def __init__(self, client: ApiClient, *, clock: Clock | None = None,
                 node_lifecycle: NodeLifecycleConfig | None = None,
                 cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
                 informers: SharedInformers | None = None) -> None:
        """``informers``: a set shared with other components of the process
        (the scheduler), else its own over ``client``. ``client`` makes the
        writes either way."""
        self.client = client
        self.clock: Clock = clock or RealClock()
        self.informers = informers or SharedInformers(client, clock=self.clock)
        self.recorders = {
            "replicaset": EventRecorder(client, "replicaset-controller", clock=self.clock),
            "deployment": EventRecorder(client, "deployment-controller", clock=self.clock),
            **{name: EventRecorder(client, f"{name}-controller", clock=self.clock)
               for name in ("daemonset", "statefulset", "job", "cronjob")},
            "hpa": EventRecorder(client, "horizontal-pod-autoscaler", clock=self.clock),
            "node-lifecycle": EventRecorder(client, "node-controller", clock=self.clock),
            "nodeipam": EventRecorder(client, "node-ipam-controller", clock=self.clock),
        }
        # Controllers register handlers and indexes before any informer runs.
        self.controllers: list[Controller] = [
            ReplicaSetController(client, self.informers, self.recorders["replicaset"], clock=self.clock),
            DeploymentController(client, self.informers, self.recorders["deployment"], clock=self.clock),
            GarbageCollector(client, self.informers, clock=self.clock),
            NamespaceController(client, self.informers, clock=self.clock),
            ServiceAccountController(client, self.informers, clock=self.clock),
            DaemonSetController(client, self.informers, self.recorders["daemonset"], clock=self.clock),
            StatefulSetController(client, self.informers, self.recorders["statefulset"], clock=self.clock),
            JobController(client, self.informers, self.recorders["job"], clock=self.clock),
            CronJobController(client, self.informers, self.recorders["cronjob"], clock=self.clock),
            HorizontalPodAutoscalerController(client, self.informers, self.recorders["hpa"], clock=self.clock),
            DisruptionController(client, self.informers, clock=self.clock),
            EndpointsController(client, self.informers, clock=self.clock),
            NodeLifecycleController(client, self.informers, self.recorders["node-lifecycle"],
                                    config=node_lifecycle, clock=self.clock),
            NodeIpamController(client, self.informers, self.recorders["nodeipam"],
                               cluster_cidr=cluster_cidr, clock=self.clock),
            BootstrapTokenCleaner(client, self.informers, clock=self.clock),
            CsrCleaner(client, self.informers, clock=self.clock),
        ]

    async def run(self) -> None:
        """Run until cancelled; a controller that dies is logged and takes
        the manager down with it rather than leaving a half-working set."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.informers.run(), name="informers")
                for recorder in self.recorders.values():
                    group.create_task(recorder.run(), name=f"events-{recorder.component}")
                for controller in self.controllers:
                    group.create_task(controller.run(), name=controller.name)
        except* Exception as excs:
            for exc in excs.exceptions:
                log.error("controller manager: task died: %r", exc)
            raise
        finally:
            for recorder in self.recorders.values():
                await recorder.close()

    def add_api_publishers(self, *, root_ca: str, service_cidr: str, address: str, port: int) -> None:
        """What in-cluster clients need, which only the server's owner knows:
        the CA in every namespace (kube-root-ca.crt) and the ``kubernetes``
        Service pointing at the API server. Call before :meth:`run`."""
        from corral.controllers.kubernetes_service import KubernetesServiceController
        from corral.controllers.rootca import RootCAPublisher

        self.controllers.append(RootCAPublisher(self.client, self.informers, root_ca, clock=self.clock))
        self.controllers.append(KubernetesServiceController(
            self.client, self.informers, service_cidr=service_cidr, address=address, port=port, clock=self.clock))
