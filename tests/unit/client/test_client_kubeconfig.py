import base64

import pytest
import yaml

from corral.client.api import ApiClient
from corral.client.kubeconfig import KubeconfigError, load_kubeconfig, parse_kubeconfig

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def config(**cluster_extra):
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [
            {"name": "other", "cluster": {"server": "https://127.0.0.2:1"}},
            {"name": "c1", "cluster": {"server": "https://127.0.0.1:6443/", **cluster_extra}},
        ],
        "users": [{"name": "u1", "user": {"token": "s3cret"}}],
        "contexts": [
            {"name": "main", "context": {"cluster": "c1", "user": "u1", "namespace": "apps"}},
            {"name": "bare", "context": {"cluster": "other"}},
        ],
    }


def test_current_context_with_ca_data():
    cfg = parse_kubeconfig(config(**{"certificate-authority-data": base64.b64encode(PEM).decode()}))
    assert cfg.server == "https://127.0.0.1:6443"
    assert cfg.token == "s3cret" and cfg.ca_data == PEM and cfg.ca_file is None
    assert cfg.namespace == "apps" and not cfg.insecure and cfg.context == "main"


def test_named_context_without_user():
    cfg = parse_kubeconfig(config(), context="bare")
    assert cfg.server == "https://127.0.0.2:1" and cfg.token is None and cfg.namespace == "default"


def test_relative_ca_path_and_token_file_resolve_next_to_the_kubeconfig(tmp_path):
    doc = config(**{"certificate-authority": "ca.crt", "insecure-skip-tls-verify": True})
    doc["users"][0]["user"] = {"tokenFile": "token"}
    (tmp_path / "token").write_text("from-file\n")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_kubeconfig(str(path))
    assert cfg.ca_file == str(tmp_path / "ca.crt")
    assert cfg.token == "from-file" and cfg.insecure


def test_from_kubeconfig_builds_a_client(tmp_path):
    doc = config(**{"insecure-skip-tls-verify": True})
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    client = ApiClient.from_kubeconfig(str(path))
    assert client.server == "https://127.0.0.1:6443" and client.namespace == "apps"


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.update({"current-context": ""}), "current-context"),
        (lambda d: d.update({"current-context": "nope"}), "contexts"),
        (lambda d: d["contexts"][0]["context"].pop("cluster"), "context.cluster"),
        (lambda d: d["clusters"][1]["cluster"].update(server="127.0.0.1:80"), "cluster.server"),
        (lambda d: d["clusters"][1]["cluster"].update({"certificate-authority-data": "%%%"}),
         "certificate-authority-data"),
        (lambda d: d["users"][0]["user"].update(token="", tokenFile="/nonexistent/t"), "tokenFile"),
        (lambda d: d.update(clusters={}), "clusters"),
    ],
)
def test_bad_kubeconfig_names_the_field(mutate, field):
    doc = config()
    mutate(doc)
    with pytest.raises(KubeconfigError, match=field):
        parse_kubeconfig(doc)


def test_missing_or_garbled_file(tmp_path):
    with pytest.raises(KubeconfigError, match="No such file"):
        load_kubeconfig(str(tmp_path / "absent"))
    bad = tmp_path / "bad"
    bad.write_text("a: [unclosed")
    with pytest.raises(KubeconfigError, match="YAML"):
        load_kubeconfig(str(bad))
