"""kill -9 of the API server in the middle of a stream of writes loses none
that were acknowledged."""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from tests.conftest import CorralProcess, wait_for


def _api(proc: CorralProcess) -> client.ApiClient:
    conf = client.Configuration()
    config.load_kube_config(config_file=str(proc.kubeconfig), client_configuration=conf)
    conf.retries = 0
    return client.ApiClient(conf)


@pytest.mark.parametrize("extra", [(), ("--api-workers", "2")], ids=["one-process", "api-workers"])
def test_acknowledged_writes_survive_kill_9(tmp_path, extra):
    """With API workers, a write a worker acknowledged was committed by the
    server process that owns the store, which is what gets killed."""
    data = tmp_path / "data"
    acknowledged: set[str] = set()
    lock = threading.Lock()
    for round_no in range(3):
        proc = CorralProcess("server", data, *extra)
        proc.wait_ready()
        api = _api(proc)
        core = client.CoreV1Api(api)
        stop = threading.Event()

        def writer(worker: int, core=core, stop=stop, round_no=round_no) -> None:
            i = 0
            while not stop.is_set():
                name = f"r{round_no}-w{worker}-{i}"
                try:
                    core.create_namespaced_config_map(
                        "default", {"metadata": {"name": name}, "data": {"n": name}}, _request_timeout=5)
                except Exception:  # the server is being killed: unacknowledged writes may go either way
                    return
                with lock:
                    acknowledged.add(name)
                i += 1

        with ThreadPoolExecutor(8) as pool:
            for w in range(8):
                pool.submit(writer, w)
            target = len(acknowledged) + 150
            wait_for(lambda target=target: len(acknowledged) >= target, timeout=60, message="writes to be acknowledged")
            proc.proc.send_signal(signal.SIGKILL)
            proc.proc.wait()
            stop.set()
        proc.stop()
        api.close()

    proc = CorralProcess("server", data)
    proc.wait_ready()
    try:
        with _api(proc) as api:
            core = client.CoreV1Api(api)
            stored = {}
            token = None
            while True:
                page = core.list_namespaced_config_map("default", limit=500, _continue=token)
                stored.update({cm.metadata.name: cm.data for cm in page.items})
                token = page.metadata._continue
                if not token:
                    break
            missing = sorted(acknowledged - stored.keys())
            assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
            assert all(stored[n] == {"n": n} for n in acknowledged)
            try:
                core.create_namespaced_config_map("default", {"metadata": {"name": "after-restart"}})
            except ApiException as exc:  # pragma: no cover - the message is the useful part
                raise AssertionError(f"server not writable after recovery: {exc.body}") from exc
    finally:
        proc.stop()
