"""A two-node Ray brought up the way a user brings one up: `ray start --head` (with the dashboard, so the Jobs API
and Serve's REST API answer, a Ray Client server port, and the custom resource `stages`) and `ray start --address`
for a node that carries the custom resource `engine`. Both run from the project's environment (its bin first on
PATH, as after `source .venv/bin/activate`), so a job's `python` is the project's.

Everything runs under one temp dir of its own (each node a folder in it, with its own `ray_current_cluster` file,
so a `ray.init()` elsewhere never joins it) and is stopped by process, not by `ray stop` (which would stop every
Ray of this user on the machine). The fixture is module-scoped: the tests that use it live in one module.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

PROJECT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalRay:
    temp: Path
    gcs: str            # 127.0.0.1:PORT, for ray.init(address=...) and `ray start --address`
    dashboard: str      # http://127.0.0.1:PORT: Jobs API, Serve REST API, state API
    client: str         # ray://127.0.0.1:PORT (Ray Client)
    head_node_id: str = ""
    engine_node_id: str = ""
    free_port = staticmethod(free_port)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        return {**env, "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0",
                **extra}

    def ray(self, *args: str, timeout: float = 600, check: bool = True, cwd: Path = PROJECT, tool: str = "ray"):
        """`ray ARGS…` (or another tool of the environment: serve, scalequest) from the project root; its output
        (stdout and stderr) in .stdout."""
        proc = subprocess.run([str(VENV_BIN / tool), *args], env=self.env(), cwd=cwd, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check and proc.returncode:
            raise AssertionError(f"{tool} {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-12000:]}")
        return proc

    def processes(self) -> list[psutil.Process]:
        """This cluster's processes (their command lines name its temp dir) and all their descendants (vLLM's
        engine cores do not)."""
        mine = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(str(self.temp) in part for part in p.info["cmdline"] or ()):
                    mine += [p, *p.children(recursive=True)]
            except psutil.Error:
                continue
        return list({p.pid: p for p in mine}.values())

    def stop(self) -> list[str]:
        """Terminate every process of this cluster, kill what outlives 15 s; returns what had to be killed."""
        procs = self.processes()
        for p in procs:
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=15)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=10)
        return [p.name() for p in alive if p.is_running()]


@pytest.fixture(scope="module")
def local_ray():
    temp = Path(tempfile.mkdtemp(prefix="sqc-", dir="/tmp"))  # short: Ray's socket paths must stay < 108 chars
    gcs, dash, client = free_port(), free_port(), free_port()
    cluster = LocalRay(temp, f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dash}", f"ray://127.0.0.1:{client}")
    # each node its own temp dir, as each machine of a real cluster has its own disk: two nodes sharing one would
    # unpack (and garbage-collect) a job's working dir in the same folder, under each other's processes
    common = ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(400 << 20), "--disable-usage-stats"]
    try:
        cluster.ray("start", "--head", f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={dash}", f"--ray-client-server-port={client}", "--num-cpus=6",
                    "--resources", json.dumps({"stages": 100}),  # as docs/cluster.md's head
                    f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={temp / 'head'}", *common,
                    timeout=180)
        # engine: 2 = a pipeline engine and a Serve LLM replica (configured with 0 CPUs) side by side
        cluster.ray("start", f"--address={cluster.gcs}", "--num-cpus=1", "--resources", json.dumps({"engine": 2}),
                    f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={temp / 'engine'}", *common,
                    timeout=180)
        cluster.head_node_id, cluster.engine_node_id = _wait_for_nodes(cluster)
        yield cluster
    finally:
        left = cluster.stop()
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"processes of the test cluster outlived SIGTERM and SIGKILL: {left}"


def _wait_for_nodes(cluster: LocalRay, timeout: float = 120) -> tuple[str, str]:
    """(head node id, engine node id) once both nodes are alive in the state API."""
    from ray.util.state import list_nodes

    deadline = time.time() + timeout
    while True:
        try:
            nodes = [n for n in list_nodes(address=cluster.dashboard) if n.state == "ALIVE"]
        except Exception:  # noqa: BLE001 - the dashboard is still starting
            nodes = []
        if len(nodes) == 2:
            head = next(n.node_id for n in nodes if n.is_head_node)
            engine = next(n.node_id for n in nodes if "engine" in (n.resources_total or {}))
            return head, engine
        if time.time() > deadline:
            raise AssertionError(f"the test cluster has {len(nodes)} live nodes after {timeout} s, not 2")
        time.sleep(1)
