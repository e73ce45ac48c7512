"""Fixtures that start real corral processes and real clients against them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORRAL = [sys.executable, "-m", "corral.cli.main"]


@pytest.fixture(autouse=True)
def _no_leaked_state_mounts(request: pytest.FixtureRequest) -> Iterator[None]:
    """An agent a test started under its tmp_path (a `corral agent` child, a
    runtime made by hand) leaves its state tmpfs mounted when it stops with
    pods (by design: the next agent adopts them). The test's directory is
    done with: unmount what is left, or pytest's clean-up of old temp dirs
    meets a busy mount."""
    yield
    tmp = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if tmp is not None:
        from corral.runtime.memfs import unmount_under

        unmount_under(Path(tmp))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling; report the last failure on timeout
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}" + (f": {last_exc!r}" if last_exc else ""))


class CorralProcess:
    """``corral server`` or ``corral up`` as a child process on a free port."""

    def __init__(self, command: str, data_dir: Path, *extra: str) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.kubeconfig = data_dir / "kubeconfig"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        if command == "up" and not any(a.startswith("--default-runtime") for a in extra):
            # The tests' pods run commands, not images: never let an engine that
            # happens to answer on this machine pick Docker for them.
            extra = (*extra, "--default-runtime", "process")
        args = [*CORRAL, command, "--data-dir", str(data_dir), "--port", str(self.port), *extra]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"https://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        import ssl
        import urllib.request

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"corral exited with {self.proc.returncode}:\n{self.output()}")
            # A kubeconfig left by an earlier run on this data dir names its port,
            # not this one: wait for this run's (API workers answer before it is written).
            if not self.kubeconfig.exists() or f"127.0.0.1:{self.port}" not in self.kubeconfig.read_text():
                return False
            with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=2) as r:
                return r.status == 200

        wait_for(ready, timeout, message="corral to be ready")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def token(self) -> str:
        return (self.data_dir / "tokens.csv").read_text().split(",", 1)[0]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        self._kill_leftover_containers()
        # The agent's state tmpfs outlives it like its pods (corral.runtime.memfs);
        # with the pods ended it goes too, before anything removes the data dir.
        from corral.runtime.memfs import unmount_under

        unmount_under(self.data_dir)
        return self.proc.returncode

    def _kill_leftover_containers(self) -> None:
        """A stopped agent leaves its containers running (it is crash-only and
        would adopt them again); a test's cluster is gone for good, so end the
        supervisors and pod inits that name its data dir (a pod's init is its
        PID namespace's PID 1: the pod's processes end with it)."""
        marker = str(self.data_dir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralProcess]:
    """One `corral server` shared by the API tests (each test uses its own namespace)."""
    proc = CorralProcess("server", tmp_path_factory.mktemp("api") / "data")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


class Kubectl:
    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.cache_dir = cache_dir

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", f"--cache-dir={self.cache_dir}", *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def __call__(self, *args: str, **kwargs) -> str:
        return self.run(*args, **kwargs).stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["kubectl", f"--cache-dir={self.cache_dir}", *args], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="session")
def kubectl(api_server: CorralProcess, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(api_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="session")
def k8s(api_server: CorralProcess):
    """The official `kubernetes` client configured from corral's kubeconfig."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(api_server.kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    yield api
    api.close()


@pytest.fixture
def namespace(k8s) -> Iterator[str]:
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(k8s).create_namespace({"metadata": {"name": name}})
    yield name
