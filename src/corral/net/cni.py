"""Calling CNI plugins (the Container Network Interface, protocol 1.0.0).

A plugin is an executable in the plugin directory (Debian's
``containernetworking-plugins`` puts bridge, host-local, portmap, loopback
... in /usr/lib/cni). The runtime runs it with the operation in the
environment (``CNI_COMMAND`` ADD, DEL or CHECK, ``CNI_CONTAINERID``,
``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_PATH``) and the network configuration as
JSON on stdin; a plugin answers ADD with a result (interfaces, ips, routes,
dns) on stdout, and a failure with an error object ``{"code", "msg",
"details"}`` and a non-zero exit.

A network configuration *list* chains plugins: ADD runs them in order, each
given the previous one's result as ``prevResult``; DEL runs them in reverse,
each given the ADD's final result, and goes on past a failing plugin so a
half-created network is still torn down (plugins must tolerate deleting what
does not exist). Runtime arguments a plugin declared in ``capabilities``
(``portMappings`` for portmap) arrive in ``runtimeConfig``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CNI_VERSION = "1.0.0"
DEFAULT_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
PLUGIN_TIMEOUT = 30.0
COMMANDS = ("ADD", "DEL", "CHECK")


class CniError(Exception):
    """A plugin failed; ``str()`` is a sentence for a pod Event."""

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        self.plugin, self.command, self.code, self.msg, self.details = plugin, command, code, msg, details
        text = f"CNI {command} with plugin {plugin} failed (code {code}): {msg}"
        super().__init__(f"{text}: {details}" if details else text)


def find_plugin_dir(candidates: tuple[str, ...] = DEFAULT_PLUGIN_DIRS) -> Path | None:
    """The first directory holding the bridge plugin, or None."""
    for d in candidates:
        if os.access(os.path.join(d, "bridge"), os.X_OK):
            return Path(d)
    return None


@dataclass(frozen=True)
class Attachment:
    """One container's place in one network: what every CNI call needs."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: dict[str, str] = field(default_factory=dict)
    """CNI_ARGS, e.g. K8S_POD_NAMESPACE / K8S_POD_NAME."""


def result_ips(result: dict[str, Any]) -> list[str]:
    """The addresses (without prefix length) a result gives the container's
    interfaces, in order."""
    out = []
    for entry in result.get("ips") or []:
        address = str(entry.get("address") or "")
        if address:
            out.append(address.split("/", 1)[0])
    return out


class CniRunner:
    """Runs the plugins of a directory; one instance per node."""

    def __init__(self, plugin_dir: Path) -> None:
        self.plugin_dir = Path(plugin_dir)

    def _env(self, command: str, at: Attachment) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": at.container_id,
            "CNI_NETNS": at.netns,
            "CNI_IFNAME": at.ifname,
            "CNI_PATH": str(self.plugin_dir),
        }
        if at.args:
            env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in sorted(at.args.items()))
        return env

    async def invoke(self, command: str, config: dict[str, Any], at: Attachment) -> dict[str, Any]:
        """One plugin call; the parsed result ({} for DEL and CHECK)."""
        if command not in COMMANDS:
            raise ValueError(f"CNI command {command!r}: one of {', '.join(COMMANDS)}")
        plugin = str(config.get("type") or "")
        exe = self.plugin_dir / plugin
        if not plugin or "/" in plugin or not os.access(exe, os.X_OK):
            raise CniError(plugin or "?", command, 1,
                           f"plugin {plugin!r} not found in {self.plugin_dir} "
                           "(apt-get install containernetworking-plugins)")
        try:
            proc = await asyncio.create_subprocess_exec(
                str(exe), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self._env(command, at))
        except OSError as exc:
            raise CniError(plugin, command, 1, f"cannot run {exe}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(json.dumps(config).encode()),
                                              PLUGIN_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CniError(plugin, command, 1, f"timed out after {PLUGIN_TIMEOUT:.0f}s") from None
        if proc.returncode != 0:
            raise _error(plugin, command, out, err, proc.returncode)
        if command != "ADD":
            return {}
        try:
            result = json.loads(out or b"{}")
        except ValueError as exc:
            raise CniError(plugin, command, 1, f"unreadable result: {out[:200]!r}") from exc
        if not isinstance(result, dict):
            raise CniError(plugin, command, 1, f"result is not an object: {out[:200]!r}")
        return result

    async def add(self, conflist: dict[str, Any], at: Attachment,
                  runtime_config: dict[str, Any] | None = None) -> dict[str, Any]:
        """ADD through every plugin of the list; the final result. A failing
        plugin undoes the ones before it (DEL) before the error is raised."""
        prev: dict[str, Any] | None = None
        done = 0
        try:
            for plugin in conflist["plugins"]:
                prev = await self.invoke("ADD", _plugin_config(conflist, plugin, prev, runtime_config), at)
                done += 1
        except CniError:
            await self._del_plugins(conflist, conflist["plugins"][:done + 1], at, prev, runtime_config)
            raise
        return prev or {}

    async def delete(self, conflist: dict[str, Any], at: Attachment, prev: dict[str, Any] | None,
                     runtime_config: dict[str, Any] | None = None) -> list[CniError]:
        """DEL through every plugin in reverse; the failures (each is also
        logged), so one broken plugin does not leave the rest allocated."""
        return await self._del_plugins(conflist, conflist["plugins"], at, prev, runtime_config)

    async def _del_plugins(self, conflist: dict[str, Any], plugins: list[dict[str, Any]], at: Attachment,
                           prev: dict[str, Any] | None,
                           runtime_config: dict[str, Any] | None) -> list[CniError]:
        errors = []
        for plugin in reversed(plugins):
            try:
                await self.invoke("DEL", _plugin_config(conflist, plugin, prev, runtime_config), at)
            except CniError as exc:
                log.warning("%s (container %s)", exc, at.container_id[:12])
                errors.append(exc)
        return errors

    async def check(self, conflist: dict[str, Any], at: Attachment, prev: dict[str, Any],
                    runtime_config: dict[str, Any] | None = None) -> None:
        """CHECK through every plugin; raises the first failure."""
        for plugin in conflist["plugins"]:
            await self.invoke("CHECK", _plugin_config(conflist, plugin, prev, runtime_config), at)


def _plugin_config(conflist: dict[str, Any], plugin: dict[str, Any], prev: dict[str, Any] | None,
                   runtime_config: dict[str, Any] | None) -> dict[str, Any]:
    config = {"cniVersion": conflist.get("cniVersion", CNI_VERSION), "name": conflist["name"], **plugin}
    if prev is not None:
        config["prevResult"] = prev
    wanted = {k for k, on in (plugin.get("capabilities") or {}).items() if on}
    chosen = {k: v for k, v in (runtime_config or {}).items() if k in wanted}
    if chosen:
        config["runtimeConfig"] = chosen
    return config


def _error(plugin: str, command: str, out: bytes, err: bytes, code: int | None) -> CniError:
    try:
        body = json.loads(out or b"{}")
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("msg"):
        return CniError(plugin, command, int(body.get("code") or 999), str(body["msg"]),
                        str(body.get("details") or ""))
    text = (err or out).decode(errors="replace").strip()[-500:]
    return CniError(plugin, command, 999, f"exited with {code}" + (f": {text}" if text else ""))
