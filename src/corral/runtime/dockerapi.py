"""The Docker Engine's HTTP API, called from the agent's event loop.

Why not the ``docker`` SDK for these calls: it is blocking, so each call
took a pool thread, a ``requests`` session round and the GIL twice, about
5 ms of the agent's CPU per container started (create + start) against
about 2 ms here, on the same core as the API server. The SDK still builds
the request bodies (``create_container_config``, ``create_host_config``:
pure functions that know the engine's API version) and pulls images (rare,
and slow anyway).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import orjson

from corral.runtime.dockerlogs import DockerEndpoint

CALL_TIMEOUT = 120.0


class EngineError(Exception):
    """A non-2xx answer: the HTTP status and the engine's own sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class EngineApi:
    """One pooled connection set to the engine (``limit`` connections at
    most; calls past that wait for one), made on first use so the object
    can be built off the loop."""

    def __init__(self, endpoint: DockerEndpoint, limit: int) -> None:
        self.endpoint = endpoint
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = self.endpoint.session(limit=self.limit)
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float = CALL_TIMEOUT,
    ) -> Any:
        """The decoded JSON answer (None when the engine sends none)."""
        data = None
        headers = {}
        if body is not None:
            data = orjson.dumps({k: v for k, v in body.items() if v is not None})
            headers["Content-Type"] = "application/json"
        url = self.endpoint.prefix + path
        async with self._http().request(
            method, url, params=params, data=data, headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise EngineError(resp.status, _message(raw) or resp.reason or "error")
            if not raw or resp.content_type != "application/json":
                return None
            return orjson.loads(raw)

    async def containers(self, labels: list[str]) -> list[dict[str, Any]]:
        """Summaries of every container (running or not) with all ``labels``."""
        filters = json.dumps({"label": labels})
        found = await self.call("GET", "/containers/json", params={"all": "1", "filters": filters})
        return list(found or [])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _message(raw: bytes) -> str:
    try:
        return str(orjson.loads(raw).get("message") or "")
    except (orjson.JSONDecodeError, AttributeError):
        return raw.decode(errors="replace").strip()
