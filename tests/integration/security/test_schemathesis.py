"""Schemathesis fuzzes the API from our own OpenAPI v3 documents: requests
generated from the schemas (valid and not) for the security-relevant kinds
must never get a 5xx, and the server must stay healthy."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from corral.testing import running_server  # noqa: E402

RESOURCES = ("configmaps", "secrets", "serviceaccounts", "resourcequotas", "limitranges", "roles",
             "rolebindings", "clusterroles", "clusterrolebindings", "selfsubjectaccessreviews",
             "subjectaccessreviews", "certificatesigningrequests")
DOCS = ("api/v1", "apis/rbac.authorization.k8s.io/v1", "apis/authorization.k8s.io/v1",
        "apis/certificates.k8s.io/v1")


@contextmanager
def server_in_thread(tmp_path: Path) -> Iterator[Any]:
    """A server on its own event loop, so synchronous clients can call it."""
    loop = asyncio.new_event_loop()
    ready, holder = threading.Event(), {}

    async def main() -> None:
        holder["stop"] = asyncio.Event()
        async with running_server(tmp_path) as server:
            holder["server"] = server
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30), "server did not start"
    try:
        yield holder["server"]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(30)
        loop.close()


def _operations(url: str, headers: dict[str, str], ca: str) -> list[Any]:
    ops = []
    for doc in DOCS:
        body = requests.get(f"{url}/openapi/v3/{doc}", headers=headers, verify=ca, timeout=10).json()
        schema = schemathesis.openapi.from_dict(body)
        for result in schema.get_all_operations():
            op = result.ok()
            if any(f"/{r}" in op.path for r in RESOURCES):
                ops.append(op)
    return ops


def test_schemathesis_finds_no_server_errors(tmp_path: Path) -> None:
    with server_in_thread(tmp_path) as server:
        url, ca = server.url, str(server.ca_file)
        headers = {"Authorization": f"Bearer {server.token}"}
        ops = _operations(url, headers, ca)
        assert len(ops) > 40
        statuses: Counter[int] = Counter()
        errors: list[str] = []
        session = requests.Session()

        def fuzzer(op: Any) -> Any:
            @settings(max_examples=5, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(data=st.data())
            def fuzz(data: Any) -> None:
                case = data.draw(op.as_strategy())
                if case.query and "watch" in case.query:
                    case.query["watch"] = "false"  # a watch is long-running by design; hostile watches are tested apart
                response = case.call(base_url=url, session=session, headers=headers, verify=ca, timeout=10)
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    errors.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")
            return fuzz

        for op in ops:
            fuzzer(op)()
        print(f"\nschemathesis: {sum(statuses.values())} requests over {len(ops)} operations: {dict(sorted(statuses.items()))}")
        assert not errors, errors[:5]
        assert requests.get(f"{url}/healthz", verify=ca, timeout=5).status_code == 200
