"""A table of over a thousand hostile or fuzzed requests against one server.

Every class of bad input must get a 4xx (never a 5xx), nothing rejected may
change the store (its revision stays put), and afterwards the server still
answers health checks and ordinary writes. The table (class → status codes)
is printed so a run shows what the server answered.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import orjson

from corral.api.ratelimit import LimitSettings
from corral.api.security import SecurityOptions
from corral.testing import running_server

ADMIN = "admin-token-0123456789"
MALLORY = "mallory-token-0123456789"
NS = "/api/v1/namespaces/fuzz"
Request = tuple[str, str, str, dict[str, str], bytes, str]  # class, method, path, headers, body, token


def _json(obj: object) -> bytes:
    return orjson.dumps(obj)


def _cm(name: object, **meta: object) -> bytes:
    return _json({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"k": "v"}})


def _requests(rng: random.Random) -> list[Request]:
    js = {"Content-Type": "application/json"}
    out: list[Request] = []

    def add(cls: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
            token: str = ADMIN) -> None:
        out.append((cls, method, path, headers if headers is not None else js, body, token))

    for i in range(40):
        add("body over the size limit", "POST", f"{NS}/configmaps", b"{" + b" " * (3 * 1024 * 1024 + i) + b"}")
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    for _ in range(40):
        add("YAML bomb (billion laughs)", "POST", f"{NS}/configmaps", bomb.encode(), {"Content-Type": "application/yaml"})
    for depth in range(60):
        body = b"[" * (200 + depth * 500) + b"]" * (200 + depth * 500)
        add("deeply nested JSON", "POST", f"{NS}/configmaps", b'{"data":' + body + b"}")
    for _ in range(60):
        raw = bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randrange(1, 40)))
        add("invalid UTF-8", "POST", f"{NS}/configmaps", b'{"metadata":{"name":"' + raw + b'"}}')
    names = ["A" * 254, "UPPER", "a_b", "-lead", "trail-", "dots..dots", "ünïcode", "a/b", "", " ", "\u0000",
             "x" * 10000, "..", "%2e%2e", "a b"]
    for name in names * 6:
        add("absurd names", "POST", f"{NS}/configmaps", _cm(name))
    for value in ["x" * 64, "-bad", "bad-", "sp ace", "ü", "a/b", "a" * 5000] * 10:
        add("absurd label values and keys", "POST", f"{NS}/configmaps", _cm("ok-name", labels={"k": value}))
        add("absurd label values and keys", "POST", f"{NS}/configmaps", _cm("ok-name", labels={value + "/" + value: "v"}))
    selectors = ["a in (", "a notin b", "!", "=", "a==b==c", "a in (b", "(((", "a,,b=", "a=b=c", "a!=", "x in ()", "!!a",
                 "a=" + "b" * 100, "a in (" + ",".join(["v"] * 2000) + ")"]
    for sel in selectors * 5:
        add("malformed label selectors", "GET", f"{NS}/configmaps?labelSelector={aiohttp.helpers.quote(sel, safe='')}")
    for sel in ["spec.bogus=1", "a", "=", "metadata.name", "x!y", "metadata.name in (a)"] * 10:
        add("malformed field selectors", "GET", f"{NS}/configmaps?fieldSelector={aiohttp.helpers.quote(sel, safe='')}")
    patches = [
        ("application/json-patch+json", b'[{"op":"explode","path":"/data"}]'),
        ("application/json-patch+json", b'[{"op":"remove","path":"/nope/deeper"}]'),
        ("application/json-patch+json", b'[{"op":"test","path":"/data/k","value":"other"}]'),
        ("application/json-patch+json", b'{"not":"a list"}'),
        ("application/json-patch+json", b'[{"op":"add","path":"data/x","value":1}]'),
        ("application/merge-patch+json", b"[1,2,3]"),
        ("application/merge-patch+json", b'{"metadata":{"name":"renamed"}}'),
        ("application/merge-patch+json", b'{"data":{"k":{"nested":true}}}'),
        ("application/strategic-merge-patch+json", b'{"$patch":"explode"}'),
        ("application/strategic-merge-patch+json", b"not json"),
        ("application/apply-patch+yaml", b"{{{{"),
        ("text/plain", b"{}"),
    ]
    for ct, body in patches * 8:
        add("malformed patches", "PATCH", f"{NS}/configmaps/victim", body, {"Content-Type": ct})
    for ct in ["text/html", "application/xml", "image/png", "multipart/form-data", "application/x-www-form-urlencoded"] * 8:
        add("wrong content types", "POST", f"{NS}/configmaps", _cm("ok-name"), {"Content-Type": ct})
    for _ in range(120):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        add("random bytes as JSON", "POST", f"{NS}/configmaps", body)
    for _ in range(60):
        junk = {rng.choice(["spec", "data", "kind", "apiVersion", "x", "metadata"]):
                rng.choice([None, 1, -1, 1.5, "s", [], {}, [1, "a"], {"a": {"b": None}}, True]) for _ in range(4)}
        junk.pop("metadata", None)
        add("random JSON objects without a name", "POST", f"{NS}/configmaps", _json(junk))
    for q in ["limit=abc", "limit=-5", "resourceVersion=xyz", "resourceVersionMatch=Never", "continue=garbage",
              "timeoutSeconds=abc", "dryRun=Maybe", "fieldValidation=Loose", "propagationPolicy=Sideways"]:
        for _ in range(6):
            method = "DELETE" if "propagation" in q else "POST" if q.startswith(("dryRun", "fieldValidation")) else "GET"
            path = f"{NS}/configmaps/victim?{q}" if method == "DELETE" else f"{NS}/configmaps?{q}"
            add("bad query parameters", method, path, _cm("ok-name") if method == "POST" else b"")
    for path in ["/api/v1/../../etc/passwd", "/api/v1/namespaces/fuzz/widgets", "/apis/nope/v1/things", "/api/v2/pods",
                 "/api/v1/namespaces/fuzz/pods/a/b/c/d", "/%00", "/api/v1/namespaces/fuzz/configmaps/victim/bogus",
                 "/apis/apps/v1/namespaces/fuzz/deployments/x/scale/extra"] * 5:
        add("unknown paths", "GET", path)
    for method in ["PUT", "PATCH", "DELETE"] * 5:
        add("methods a path does not take", method, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", b"{}")
    for token in ["", "Bearer", "Bearer " + "x" * 5000, "Basic YWRtaW46YWRtaW4=", "Bearer a.b.c",
                  "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."] * 6:
        out.append(("missing or forged credentials", "GET", f"{NS}/configmaps", {"Authorization": token} if token else {},
                    b"", "raw"))
    for _ in range(20):
        add("oversized headers", "GET", f"{NS}/configmaps", headers={"X-Junk": "j" * 20000})
    for _ in range(30):
        add("forbidden for an ordinary user", "GET", "/api/v1/namespaces/kube-system/secrets", token=MALLORY)
        add("forbidden for an ordinary user", "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            _json({"metadata": {"name": "root"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                   "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]}),
            token=MALLORY)
    return out


async def _send(session: aiohttp.ClientSession, url: str, req: Request) -> int:
    _cls, method, path, headers, body, token = req
    hdrs = dict(headers)
    if token != "raw":
        hdrs["Authorization"] = f"Bearer {token}"
    try:
        async with session.request(method, url + path, headers=hdrs, data=body or None) as resp:
            await resp.read()
            return resp.status
    except aiohttp.ClientResponseError as exc:
        return exc.status
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
        return 0  # the server closed the connection (e.g. after an oversized body)
    except TimeoutError:
        return -1  # no answer in time: a hang, reported in the table and failed below


async def _slow_body(host: str, port: int, ctx: ssl.SSLContext) -> int:
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
    writer.write(f"POST {NS}/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MALLORY}\r\n"
                 "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"meta".encode())
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return int(line.split()[1])


async def _watches(ctx: ssl.SSLContext, url: str, n: int) -> Counter[int]:
    responses = []
    statuses: Counter[int] = Counter()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=0),
                                    timeout=aiohttp.ClientTimeout(sock_connect=10))
    for _ in range(n):
        resp = await session.get(f"{url}{NS}/configmaps?watch=true", headers={"Authorization": f"Bearer {MALLORY}"})
        statuses[resp.status] += 1
        responses.append(resp)
    for resp in responses:
        resp.close()
    await session.close()
    return statuses


async def _flood(session: aiohttp.ClientSession, url: str, n: int) -> Counter[int]:
    async def one() -> int:
        async with session.get(f"{url}{NS}/configmaps", headers={"Authorization": f"Bearer {MALLORY}"}) as resp:
            if resp.status == 429:
                assert resp.headers.get("Retry-After") == "1"
            await resp.read()
            return resp.status
    return Counter(await asyncio.gather(*(one() for _ in range(n))))


async def test_hostile_table(tmp_path: Path) -> None:
    data = tmp_path / "server"
    data.mkdir()
    (data / "tokens.csv").write_text(f'{ADMIN},admin,admin,"system:masters"\n{MALLORY},mallory,mallory\n')
    limits = LimitSettings(max_in_flight_per_user=8, queue_per_user=8, queue_wait=0.2,
                           max_watches_per_user=20, body_timeout=1.0)
    async with running_server(tmp_path, security=SecurityOptions(limits=limits)) as server:
        async with server.client() as admin:
            await admin.request("POST", "/api/v1/namespaces", json={"metadata": {"name": "fuzz"}})
            await admin.request("POST", f"{NS}/configmaps", json={"metadata": {"name": "victim"}, "data": {"k": "v"}})
            await admin.request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/fuzz/rolebindings", json={
                "metadata": {"name": "mallory-edit"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]})
        await asyncio.sleep(0.2)  # the binding reaches the authorizer's cache
        revision = await server.ctx.store.current_revision()
        table: dict[str, Counter[int]] = defaultdict(Counter)
        ctx = ssl.create_default_context(cafile=str(server.ca_file))
        connector = aiohttp.TCPConnector(ssl=ctx, limit=32)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20)) as session:
            requests = _requests(random.Random(20261126))
            statuses = await asyncio.gather(*(_send(session, server.url, r) for r in requests))
            for req, status in zip(requests, statuses, strict=True):
                table[req[0]][status] += 1
            assert await server.ctx.store.current_revision() == revision, "a rejected request wrote to the store"
            table["slow request bodies (1s limit)"].update(
                await asyncio.gather(*(_slow_body("127.0.0.1", server.port, ctx) for _ in range(5))))
            table["idle watches past the per-user cap (20)"].update(await _watches(ctx, server.url, 30))
            table["request flood from one user"].update(await _flood(session, server.url, 200))
            async with session.get(f"{server.url}/healthz") as resp:
                assert resp.status == 200
        async with server.client() as admin:  # still writes normally afterwards
            await admin.request("POST", f"{NS}/configmaps", json={"metadata": {"name": "after"}, "data": {"k": "v"}})
            victim = await admin.request("GET", f"{NS}/configmaps/victim")
            assert victim["data"] == {"k": "v"}
            assert len((await admin.request("GET", f"{NS}/configmaps"))["items"]) == 2
    total = sum(sum(c.values()) for c in table.values())
    print(f"\nhostile requests: {total}")
    for cls, counts in table.items():
        print(f"  {cls:45s} {dict(sorted(counts.items()))}")
    assert total >= 1000
    assert not [cls for cls, c in table.items() if any(s >= 500 or s < 0 for s in c)], dict(table)
    assert table["slow request bodies (1s limit)"] == Counter({408: 5})
    assert table["idle watches past the per-user cap (20)"] == Counter({200: 20, 429: 10})
    assert table["request flood from one user"][429] > 0 and table["request flood from one user"][200] > 0
