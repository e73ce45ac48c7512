"""``corral sim``: run hollow nodes against a cluster (scale tests, benchmarks)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path

import click

from corral.sim.hollow import LEASE_PERIOD, NodeShape


@click.command()
@click.option("--nodes", "count", default=100, show_default=True, type=click.IntRange(1, 100_000),
              help="How many hollow nodes to run.")
@click.option("--server", "server_url", required=True, help="API server URL, e.g. https://127.0.0.1:6443.")
@click.option("--token", required=True, help="Bearer token for the API server.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--insecure-skip-tls-verify", "insecure", is_flag=True)
@click.option("--prefix", default="hollow-", show_default=True, help="Node name prefix.")
@click.option("--cpu", default="32", show_default=True, help="Allocatable cpu per node.")
@click.option("--memory", default="128Gi", show_default=True, help="Allocatable memory per node.")
@click.option("--pods", "max_pods", default=110, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--zones", default=3, show_default=True, type=click.IntRange(1, 10_000),
              help="Spread nodes over this many topology.kubernetes.io/zone values.")
@click.option("--runtimes", default="process", show_default=True,
              help="Runtimes the nodes advertise (corral.dev/runtimes).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE[/EVERY]",
              help="Label every node (or every EVERY-th node) with KEY=VALUE; repeatable.")
@click.option("--lease-period", "--lease-interval", "lease_period", default=LEASE_PERIOD, show_default=True,
              type=click.FloatRange(0.1, 3600),
              help="Seconds between a node's Lease renewals (a kubelet's node lease: 10). Each node "
                   "promises a fence timeout of three periods, which sets its failover grace.")
@click.option("--pod-cidr-range", default="100.64.0.0/10", show_default=True,
              help="Each node registers with the next /24 of this range as spec.podCIDR (hollow nodes run "
                   "no pod network); '' leaves allocation to the node IPAM controller.")
@click.option("--pod-watch", type=click.Choice(["per-node", "shared"]), default="per-node", show_default=True,
              help="per-node: each node lists and watches its own pods (spec.nodeName=<node>), as a kubelet, "
                   "holding a connection (and open file) per node; shared: one watch of all bound pods, "
                   "its events handed to their nodes (cheaper for the machine running the sim).")
@click.option("--node-token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The server's token file (DATA_DIR/tokens.csv): each node gets its own identity "
                   "system:node:<name> there, so the node authorizer judges its requests as an agent's. "
                   "Without it every node uses --token.")
@click.option("-v", "--verbose", is_flag=True)
def sim(count: int, server_url: str, token: str, ca_file: str | None, insecure: bool, prefix: str,
        cpu: str, memory: str, max_pods: int, zones: int, runtimes: str, labels: tuple[str, ...],
        lease_period: float, pod_cidr_range: str, pod_watch: str, node_token_file: Path | None,
        verbose: bool) -> None:
    """Run N hollow nodes: real Nodes, Leases and pod status, nothing started."""
    from corral.cli.main import _setup_logging, run_until_signalled
    from corral.scheduler.quantity import milli, units
    from corral.sim.cluster import HollowCluster, fds_needed, raise_fd_limit

    _setup_logging(verbose)
    logging.getLogger("corral.client").setLevel(logging.WARNING)
    try:
        milli(cpu, field="--cpu")
        units(memory, field="--memory")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if pod_cidr_range:
        try:
            ipaddress.IPv4Network(pod_cidr_range)
        except ValueError as exc:
            raise click.BadParameter(f"{pod_cidr_range!r}: {exc}", param_hint="--pod-cidr-range") from None
    try:
        raise_fd_limit(fds_needed(count, pod_watch))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"--nodes {count} with --pod-watch {pod_watch}: {exc}; raise the limit "
                                   "or use fewer nodes or --pod-watch shared") from None
    shape = NodeShape(cpu=cpu, memory=memory, pods=max_pods, zones=zones, runtimes=runtimes,
                      labels=dict(_parse_label(raw) for raw in labels), pod_cidr_range=pod_cidr_range or None)

    node_tokens = None
    if node_token_file is not None:
        from corral.sim.identity import ensure_node_tokens

        try:
            node_tokens = ensure_node_tokens(node_token_file, (f"{prefix}{i}" for i in range(count)))
        except OSError as exc:
            raise click.BadParameter(f"{node_token_file}: {exc}", param_hint="--node-token-file") from None

    async def run(stop: asyncio.Event) -> None:
        cluster = HollowCluster(server_url, token=token, ca_file=ca_file, insecure=insecure, count=count,
                                prefix=prefix, shape=shape, lease_period=lease_period,
                                pod_watch=pod_watch, node_tokens=node_tokens)
        ready = asyncio.Event()
        task = asyncio.ensure_future(cluster.run(ready))
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait([task, waiter, asyncio.ensure_future(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set() and not task.done():
            click.echo(f"{count} hollow nodes ready", err=True)
            await asyncio.wait([task, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        waiter.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a server we cannot reach: say so plainly
            raise click.ClickException(f"hollow nodes stopped: {exc}") from exc

    run_until_signalled(run)


def _parse_label(raw: str) -> tuple[str, tuple[str, int]]:
    text, _, every = raw.partition("/")
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise click.BadParameter(f"{raw!r}: expected KEY=VALUE or KEY=VALUE/EVERY", param_hint="--label")
    try:
        n = int(every) if every else 1
    except ValueError:
        raise click.BadParameter(f"{raw!r}: EVERY must be an integer", param_hint="--label") from None
    if n < 1:
        raise click.BadParameter(f"{raw!r}: EVERY must be at least 1", param_hint="--label")
    return key, (value, n)
