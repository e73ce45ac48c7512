"""The ``corral`` command."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from corral import __version__
from corral.api.bootstrap import RunningServer, ServerOptions, default_data_dir, server_loop_factory
from corral.cli.certs import certs as certs_command
from corral.cli.encryption import encryption as encryption_command
from corral.cli.sim import sim as sim_command
from corral.cli.store import store as store_commands
from corral.cli.token import token as token_command


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def tune_gc() -> None:
    """Collect young garbage every 50,000 allocations, not 700: a server's
    informer caches and stored objects are millions of tracked objects, and
    each decoded pod allocates hundreds, so the default thresholds ran a young
    collection every few requests and a full one (0.1-0.3 s, finding almost
    nothing) every few seconds of a pod burst. Measured in bench/schedule.py
    end_to_end: server CPU per pod 13.0/11.3 -> 9.9/8.1 ms. Cycles are still
    collected; a full collection still needs 25 % growth of the old heap."""
    import gc

    gc.set_threshold(50_000, 20, 100)


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]],
                        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
    """Run ``main(stop)`` until SIGINT/SIGTERM sets ``stop``; a second signal
    ends at once. ``loop_factory`` picks the event loop (default: asyncio's)."""

    tune_gc()

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        with asyncio.Runner(loop_factory=loop_factory) as loop_runner:
            loop_runner.run(runner())
    except OSError as exc:  # e.g. the port is taken: say so without a traceback
        raise click.ClickException(str(exc)) from exc


def server_options(fn: Callable[..., None]) -> Callable[..., None]:
    fn = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                      help="Where state, certificates and the kubeconfig live "
                           "(default: $XDG_DATA_HOME/corral).")(fn)
    fn = click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")(fn)
    fn = click.option("--port", default=6443, show_default=True, type=click.IntRange(0, 65535))(fn)
    fn = click.option("--store", "store_url", default="",
                      help="Store URL (default: SQLite in the data dir).")(fn)
    fn = click.option("--service-cidr", default="127.43.0.0/16", show_default=True,
                      help="Range Service cluster IPs are allocated from.")(fn)
    for flag, what in (("cafile", "CA bundle etcd's certificates are checked against"),
                       ("certfile", "client certificate presented to etcd"),
                       ("keyfile", "key of --etcd-certfile")):
        fn = click.option(f"--etcd-{flag}", type=click.Path(exists=True, dir_okay=False), default=None,
                          expose_value=False, callback=_remember, help=f"TLS to etcd: {what}.")(fn)
    fn = click.option("--api-workers", type=click.IntRange(1, 64), default=1, show_default=True,
                      expose_value=False, callback=_remember,
                      help="Processes serving the API port. 1: the server process itself. More: N "
                           "API worker processes sharing the port (SO_REUSEPORT), while the server "
                           "process keeps the store, controllers and scheduler; uses more cores.")(fn)
    fn = click.option("-v", "--verbose", is_flag=True)(fn)
    return fn


def _remember(ctx: click.Context, param: click.Parameter, value: object) -> None:
    """The --etcd-* TLS files and --api-workers, kept aside so every command
    with server options gets them without another parameter."""
    ctx.meta[f"corral.{param.name}"] = value


def scheduler_config_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--scheduler-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
        callback=lambda c, p, v: _scheduler_profiles(v),
        help="Scheduler profiles (YAML, docs/scheduler.md); default: $CORRAL_SCHEDULER_CONFIG, "
             "else one spread profile.")(fn)


def _scheduler_profiles(path: Path | None) -> list[Any] | None:
    from corral.scheduler.profile import load_profiles_file

    try:
        return load_profiles_file(path) if path is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _options(data_dir: Path | None, host: str, port: int, store_url: str, service_cidr: str) -> ServerOptions:
    from corral.store.etcd_conn import with_tls_files

    meta = click.get_current_context().meta
    try:
        store_url = with_tls_files(store_url, meta.get("corral.etcd_cafile"), meta.get("corral.etcd_certfile"),
                                   meta.get("corral.etcd_keyfile"))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return ServerOptions(data_dir=data_dir or default_data_dir(), host=host, port=port,
                         store_url=store_url, service_cidr=service_cidr,
                         api_workers=meta.get("corral.api_workers") or 1)


@click.group()
@click.version_option(__version__, prog_name="corral")
def main() -> None:
    """corral: a container orchestrator that speaks the Kubernetes API."""


@main.command()
@server_options
@click.option("--leader-elect/--no-leader-elect", default=None,
              help="Run the controllers and scheduler only while holding the leader Lease "
                   "(default: on with an etcd:// store, off with SQLite).")
@click.option("--node-lifecycle", default="", callback=lambda c, p, v: _node_lifecycle(v),
              help="Failure detection and eviction settings, e.g. grace=2.5,detector=fixed,"
                   "unhealthy-threshold=0.55,min-unhealthy=3,secondary-rate=0.1 (docs/failover.md).")
@click.option("--cluster-cidr", default="198.18.0.0/17", show_default=True, callback=lambda c, p, v: _cidr(v),
              help="Range the nodes' pod ranges (a /24 each, spec.podCIDR) are cut from.")
@scheduler_config_option
def server(data_dir: Path | None, host: str, port: int, store_url: str, service_cidr: str, verbose: bool,
           leader_elect: bool | None, node_lifecycle: object, cluster_cidr: str,
           scheduler_config: list[Any] | None) -> None:
    """Run the API server (with the controllers and the scheduler)."""
    _setup_logging(verbose)
    opts = _options(data_dir, host, port, store_url, service_cidr)
    if leader_elect is None:
        leader_elect = store_url.lower().startswith(("etcd://", "etcds://"))

    async def run(stop: asyncio.Event) -> None:
        from corral.cluster import ControlPlane

        async with RunningServer(opts) as srv, ControlPlane(srv, leader_elect=leader_elect,
                                                            node_lifecycle=node_lifecycle,
                                                            cluster_cidr=cluster_cidr,
                                                            scheduler_profiles=scheduler_config):
            _announce(srv)
            await stop.wait()

    run_until_signalled(run, server_loop_factory())


@main.command()
@server_options
@click.option("--node-name", default=None, help="Name of this machine's Node (default: hostname).")
@click.option("--default-runtime", type=click.Choice(["auto", "process", "docker"]), default="auto",
              show_default=True,
              help="Runtime for pods without runtimeClassName (auto: docker if an engine answers).")
@click.option("--system-reserved", default="", callback=lambda c, p, v: _reserved(v),
              help="Resources kept for the system, e.g. cpu=100m,memory=256Mi (allocatable = capacity - this).")
@click.option("--proxy-mode", type=click.Choice(["userspace", "nftables"]), default=None,
              callback=lambda c, p, v: _proxy_mode(v, one_machine=True),
              help="Service proxy: userspace (sockets, no privileges) or nftables (kernel DNAT, root). "
                   "Default: userspace.")
@click.option("--pod-network", type=click.Choice(["host", "cni"]), default="host", show_default=True,
              help="cni: every pod (but hostNetwork ones) gets its own network namespace and address "
                   "(root, CNI plugins; needs --proxy-mode nftables and a --service-cidr outside 127/8, "
                   "e.g. 198.18.160.0/24, since pods have a loopback of their own); host: pods share "
                   "this machine's network.")
@click.option("--cluster-cidr", default="198.18.0.0/17", show_default=True, callback=lambda c, p, v: _cidr(v),
              help="Range the node's pod range (spec.podCIDR, with --pod-network cni) is cut from.")
@scheduler_config_option
def up(data_dir: Path | None, host: str, port: int, store_url: str, service_cidr: str, verbose: bool,
       node_name: str | None, default_runtime: str, system_reserved: dict[str, str], proxy_mode: str,
       pod_network: str, cluster_cidr: str, scheduler_config: list[Any] | None) -> None:
    """Run a one-machine cluster: API server, controllers, scheduler and an agent."""
    _setup_logging(verbose)
    if pod_network == "cni":
        _check_pod_network(service_cidr, proxy_mode)
    opts = _options(data_dir, host, port, store_url, service_cidr)

    async def run(stop: asyncio.Event) -> None:
        from corral.cluster import ControlPlane, LocalAgent

        async with RunningServer(opts) as srv, ControlPlane(srv, cluster_cidr=cluster_cidr,
                                                            scheduler_profiles=scheduler_config), \
                LocalAgent(srv, node_name, default_runtime=default_runtime, system_reserved=system_reserved,
                           proxy_mode=proxy_mode, pod_network=pod_network):
            _announce(srv)
            await stop.wait()

    run_until_signalled(run)


@main.command()
@click.option("--server", "server_url", required=True, callback=lambda c, p, v: _servers(v),
              help="API server URL, e.g. https://10.0.0.1:6443; several, comma-separated, for HA.")
@click.option("--token", default=None,
              help="Join token (corral token create): exchanged for a node client certificate kept in "
                   "DATA_DIR/pki, so a restart needs no token. Any other token is used as a bearer token.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--insecure-skip-tls-verify", "insecure", is_flag=True)
@click.option("--name", "node_name", default=None, help="Node name (default: hostname).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--address", default="127.0.0.1", show_default=True, help="Address the agent serves logs on.")
@click.option("--port", default=10250, show_default=True, type=click.IntRange(0, 65535))
@click.option("--default-runtime", type=click.Choice(["auto", "process", "docker"]), default="auto",
              show_default=True,
              help="Runtime for pods without runtimeClassName (auto: docker if an engine answers).")
@click.option("--system-reserved", default="", callback=lambda c, p, v: _reserved(v),
              help="Resources kept for the system, e.g. cpu=100m,memory=256Mi (allocatable = capacity - this).")
@click.option("--proxy-mode", type=click.Choice(["userspace", "nftables"]), default=None,
              callback=lambda c, p, v: _proxy_mode(v, one_machine=False),
              help="Service proxy: userspace (sockets, no privileges) or nftables (kernel DNAT, root). "
                   "Default: nftables as root with nft, else userspace.")
@click.option("--pod-network", type=click.Choice(["auto", "cni", "host"]), default="auto", show_default=True,
              help="cni: every pod (but hostNetwork ones) gets its own network namespace and address from "
                   "the node's podCIDR through the CNI plugins; host: pods share this machine's network; "
                   "auto: cni as root with the plugins installed.")
@click.option("-v", "--verbose", is_flag=True)
def agent(server_url: str, token: str | None, ca_file: str | None, insecure: bool, node_name: str | None,
          data_dir: Path | None, address: str, port: int, default_runtime: str,
          system_reserved: dict[str, str], proxy_mode: str, pod_network: str, verbose: bool) -> None:
    """Run a node agent that joins an existing cluster."""
    _setup_logging(verbose)

    async def run(stop: asyncio.Event) -> None:
        from corral.client.nodecert import BootstrapError
        from corral.cluster import run_agent

        try:
            await run_agent(server_url, token, ca_file=ca_file, insecure=insecure, node_name=node_name,
                            data_dir=data_dir or default_data_dir() / "agent", address=address, port=port,
                            stop=stop, default_runtime=default_runtime,
                            system_reserved=system_reserved, proxy_mode=proxy_mode,
                            pod_network=pod_network)
        except BootstrapError as exc:
            raise click.ClickException(f"cannot join the cluster: {exc}") from exc

    run_until_signalled(run)


def _proxy_mode(value: str | None, *, one_machine: bool) -> str:
    from corral.net.node import default_proxy_mode, proxy_mode_problem

    mode = value or default_proxy_mode(one_machine=one_machine)
    problem = proxy_mode_problem(mode)
    if problem:
        raise click.BadParameter(problem, param_hint="--proxy-mode")
    return mode


def _check_pod_network(service_cidr: str, proxy_mode: str) -> None:
    """Pods in their own network namespace cannot reach a 127.x VIP (it is
    their own loopback) nor the userspace proxy's sockets on it."""
    import ipaddress

    from corral.net.cni import find_plugin_dir
    from corral.net.podnet import why_unavailable

    why_not = why_unavailable(find_plugin_dir())
    if why_not:
        raise click.BadParameter(why_not, param_hint="--pod-network")
    try:
        loopback = ipaddress.ip_network(service_cidr, strict=False).is_loopback
    except ValueError:
        return  # the server says what is wrong with it
    if loopback:
        raise click.BadParameter(f"{service_cidr} is loopback, which pods in their own network namespace "
                                 "cannot reach: give --service-cidr outside 127/8 (e.g. 198.18.160.0/24)",
                                 param_hint="--service-cidr")
    if proxy_mode != "nftables":
        raise click.BadParameter("--pod-network cni needs --proxy-mode nftables (the userspace proxy "
                                 "listens on loopback VIPs)", param_hint="--proxy-mode")


def _cidr(value: str) -> str:
    from corral.controllers.nodeipam import parse_cluster_cidr

    try:
        return str(parse_cluster_cidr(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _reserved(value: str) -> dict[str, str]:
    from corral.agent.node import parse_reserved

    try:
        return parse_reserved(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _announce(srv: RunningServer) -> None:
    click.echo(f"corral API server at {srv.url}")
    click.echo("Point kubectl at it with:")
    click.echo(f"  export KUBECONFIG={srv.kubeconfig}")
    click.echo("Then try: kubectl get nodes")


def _node_lifecycle(value: str) -> object:
    from corral.controllers.nodelifecycle import parse_node_lifecycle

    try:
        return parse_node_lifecycle(value) if value else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _servers(value: str) -> str:
    from corral.client.api import parse_servers

    try:
        return ",".join(parse_servers(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


main.add_command(store_commands)
main.add_command(token_command)
main.add_command(sim_command)
main.add_command(certs_command)
main.add_command(encryption_command)

if __name__ == "__main__":
    main()
