"""RuntimeClass objects through the real API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.client.errors import ApiError
from corral.client.resources import RUNTIMECLASSES
from corral.testing import running_server


async def test_default_classes_exist_and_handler_is_validated(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv:
        client = srv.client()
        try:
            items = (await client.list(RUNTIMECLASSES))["items"]
            assert {(rc["metadata"]["name"], rc["handler"]) for rc in items} >= {
                ("process", "process"),
                ("docker", "docker"),
            }
            bad = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                   "metadata": {"name": "bad"}, "handler": "Not_A_Label"}
            with pytest.raises(ApiError) as err:
                await client.create(RUNTIMECLASSES, bad)
            assert err.value.status == 422 and "handler" in str(err.value)
            rc = await client.get(RUNTIMECLASSES, "docker")
            rc["handler"] = "process"
            with pytest.raises(ApiError) as err:
                await client.replace(RUNTIMECLASSES, rc)
            assert "field is immutable" in str(err.value)
        finally:
            await client.close()
