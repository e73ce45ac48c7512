"""Bad requests get the right 4xx Status, and nothing is written."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest


class Raw:
    def __init__(self, server) -> None:
        self.base = server.url
        self.token = server.token()
        self.ctx = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))

    def __call__(self, method: str, path: str, body: bytes | None = None,
                 content_type: str = "application/json", query: str = "") -> tuple[int, dict]:
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, data=body, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


@pytest.fixture(scope="module")
def raw(api_server) -> Raw:
    return Raw(api_server)


def cm_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def assert_status(result: tuple[int, dict], code: int, reason: str, text: str = "") -> dict:
    status, body = result
    assert status == code, body
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == code
    assert body["reason"] == reason, body
    assert text in body["message"], body["message"]
    return body


def assert_empty(raw: Raw, ns: str) -> None:
    status, body = raw("GET", cm_path(ns))
    # kube-root-ca.crt is published in every namespace (as in Kubernetes); nothing else may be there.
    assert status == 200 and [i for i in body["items"] if i["metadata"]["name"] != "kube-root-ca.crt"] == []


CASES = [
    ("malformed json", b'{"metadata": {"name": "x"', "application/json", 400, "BadRequest", "json parse error"),
    ("not an object", b'[1, 2, 3]', "application/json", 400, "BadRequest", "must be an object"),
    ("malformed yaml", b"metadata:\n  name: [x\n", "application/yaml", 400, "BadRequest", "YAML"),
    ("malformed protobuf", b"k8s\x00\x0a\xff\xff", "application/vnd.kubernetes.protobuf", 400, "BadRequest", ""),
    ("protobuf without magic", b"\x0a\x02hi", "application/vnd.kubernetes.protobuf", 400, "BadRequest", ""),
    ("unknown media type", b"name=x", "application/x-www-form-urlencoded", 415, "UnsupportedMediaType", "unknown format"),
    ("wrong kind", b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}', "application/json", 400,
     "BadRequest", "does not match the expected kind"),
    ("wrong apiVersion", b'{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}', "application/json",
     400, "BadRequest", "does not match the expected API version"),
    ("invalid name", b'{"metadata":{"name":"Not_Valid"}}', "application/json", 422, "Invalid", "metadata.name"),
    ("missing name", b'{"metadata":{}}', "application/json", 422, "Invalid", "metadata.name"),
    ("data not a map", b'{"metadata":{"name":"x"},"data":"oops"}', "application/json", 400, "BadRequest", "data"),
    ("boolean of the wrong type", b'{"metadata":{"name":"x"},"immutable":"yes"}', "application/json", 400,
     "BadRequest", "immutable"),
    ("yaml alias bomb", b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
     b"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\nmetadata: {name: bomb}\n",
     "application/yaml", 400, "BadRequest", "aliases"),
    ("deep nesting", b'{"metadata":{"name":"deep"},"data":' + b'{"a":' * 200 + b'1' + b'}' * 200 + b'}',
     "application/json", 400, "BadRequest", "nested"),
]


@pytest.mark.parametrize("label,body,ctype,code,reason,text", CASES, ids=[c[0] for c in CASES])
def test_bad_create_bodies(raw, namespace, label, body, ctype, code, reason, text):
    assert_status(raw("POST", cm_path(namespace), body, ctype), code, reason, text)
    assert_empty(raw, namespace)


def test_strict_unknown_field_names_the_path(raw, namespace):
    body = json.dumps({"metadata": {"name": "x", "labelz": {}}, "data": {}}).encode()
    result = raw("POST", cm_path(namespace), body, query="fieldValidation=Strict")
    assert_status(result, 400, "BadRequest", 'unknown field "metadata.labelz"')
    assert_empty(raw, namespace)


def test_unknown_fields_are_dropped_with_a_warning_by_default(raw, namespace):
    body = json.dumps({"metadata": {"name": "x"}, "data": {"a": "b"}, "extra": 1}).encode()
    status, obj = raw("POST", cm_path(namespace), body)
    assert status == 201 and "extra" not in obj
    status, obj = raw("GET", cm_path(namespace, "x"))
    assert "extra" not in obj


def test_oversized_body_is_413(raw, namespace):
    big = json.dumps({"metadata": {"name": "big"}, "data": {"a": "x" * (4 * 1024 * 1024)}}).encode()
    status, body = raw("POST", cm_path(namespace), big)
    assert status == 413 and body["reason"] == "RequestEntityTooLarge"
    assert_empty(raw, namespace)


def test_missing_namespace_is_404(raw):
    body = json.dumps({"metadata": {"name": "x"}}).encode()
    assert_status(raw("POST", cm_path("no-such-ns"), body), 404, "NotFound", 'namespaces "no-such-ns" not found')


def test_name_mismatch_on_update(raw, namespace):
    raw("POST", cm_path(namespace), json.dumps({"metadata": {"name": "a"}}).encode())
    body = json.dumps({"metadata": {"name": "b"}, "data": {"x": "y"}}).encode()
    assert_status(raw("PUT", cm_path(namespace, "a"), body), 400, "BadRequest", "does not match the name")
    status, obj = raw("GET", cm_path(namespace, "a"))
    assert "data" not in obj or obj["data"] != {"x": "y"}


def test_bad_patches(raw, namespace):
    raw("POST", cm_path(namespace), json.dumps({"metadata": {"name": "p"}, "data": {"a": "1"}}).encode())
    path = cm_path(namespace, "p")
    assert_status(raw("PATCH", path, b"{nope", "application/merge-patch+json"), 400, "BadRequest")
    assert_status(raw("PATCH", path, b'{"op":"add"}', "application/json-patch+json"), 400, "BadRequest")
    assert_status(raw("PATCH", path, b'[{"op":"remove","path":"/data/zzz"}]', "application/json-patch+json"),
                  422, "Invalid")
    assert_status(raw("PATCH", path, b'{"data":{"a":"2"}}', "text/plain"), 415, "UnsupportedMediaType")
    assert_status(raw("PATCH", path, b'{"data":"str"}', "application/merge-patch+json"), 400, "BadRequest", "data")
    assert_status(raw("PATCH", path, b'{"metadata":{"labels":{"bad key!":"x"}}}', "application/merge-patch+json"),
                  422, "Invalid", "metadata.labels")
    status, obj = raw("GET", path)
    assert obj["data"] == {"a": "1"}


def test_bad_query_parameters(raw, namespace):
    assert_status(raw("GET", cm_path(namespace), query="labelSelector=a+in+(b"), 400, "BadRequest")
    assert_status(raw("GET", cm_path(namespace), query="limit=abc"), 400, "BadRequest", "limit")
    assert_status(raw("GET", cm_path(namespace), query="continue=%25%25bad"), 400, "BadRequest", "continue")
    assert_status(raw("GET", "/api/v1/nosuchthings"), 404, "NotFound")
    assert_status(raw("DELETE", cm_path(namespace, "absent")), 404, "NotFound", 'configmaps "absent" not found')


def test_bad_list_and_watch_parameters(raw, namespace):
    assert_status(raw("GET", cm_path(namespace), query="resourceVersionMatch=Never"), 400, "BadRequest",
                  "resourceVersionMatch")
    assert_status(raw("GET", cm_path(namespace), query="watch=1&timeoutSeconds=abc"), 400, "BadRequest",
                  "timeoutSeconds")
    assert_status(raw("GET", cm_path(namespace), query="watch=1&resourceVersion=xyz"), 400, "BadRequest",
                  "resourceVersion")
