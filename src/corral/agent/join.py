"""Which of several API servers an agent joins.

``corral agent --server URL1,URL2`` names every API server of an HA control
plane (each is active over the shared store). The agent joins the first one
that answers its health check, trying them in turn with a bounded backoff
until one does; a node that comes back under the same name then resumes its
Node and Lease (agent/node.py).
"""

from __future__ import annotations

import asyncio
import logging

from corral.client.api import ApiClient
from corral.client.errors import ApiError

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0


def parse_servers(text: str) -> list[str]:
    """``--server``: one URL or several separated by commas."""
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise ValueError("--server: expected at least one https:// URL")
    for url in urls:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"--server: {url!r} is not an http(s) URL")
    return urls


async def pick_server(
    text: str, *, ca_file: str | None, insecure: bool, stop: asyncio.Event | None = None
) -> str:
    urls = parse_servers(text)
    if len(urls) == 1:
        return urls[0]
    delay = 0.5
    while True:
        for url in urls:
            async with ApiClient(url, ca_file=ca_file, insecure=insecure,
                                 timeout=PROBE_TIMEOUT) as probe:
                try:
                    await probe.request_bytes("GET", "/healthz")
                    log.info("joining the cluster through %s", url)
                    return url
                except ApiError as exc:
                    log.warning("API server %s does not answer: %s", url, exc)
        if stop is not None and stop.is_set():
            return urls[0]
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
