"""Load test of the HTTP API: concurrent clients drive POST /v1/questions on loopback, in phases of different
client counts (default 1 → 4 → 8 → 1), while a sampler records each deployment's running replicas, so the
table shows the autoscaler scaling up under load and back down after it.

Starts Serve itself from `--config` (with the autoscaling overrides below) unless `--url` names a running one.
Loopback only (127.0.0.1 / localhost), bounded: at most 32 clients, every phase at most 600 s, per-request
timeout.

Run:  .venv/bin/python bench/serve_load.py --model models/smollm2-135m-instruct [--phases 1:40,4:60,8:60,1:60]
      [--n 1] [--max-llm-replicas 2] [--out bench/results/serve_load.json]
Prints, per phase: clients, requests ok / errors, requests/s, questions/s, p50 / p99 latency; then the replica
timeline. See docs/serving.md for figures measured on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

MAX_CLIENTS, MAX_PHASE_S = 32, 600


def parse_phases(text: str) -> list[tuple[int, float]]:
    """'1:40,4:60' → [(1 client, 40 s), (4 clients, 60 s)], within the bounds."""
    phases = []
    for part in text.split(","):
        clients, _, seconds = part.partition(":")
        c, s = int(clients), float(seconds)
        if not (1 <= c <= MAX_CLIENTS and 0 < s <= MAX_PHASE_S):
            raise SystemExit(f"--phases: '{part}' must be clients:seconds with 1..{MAX_CLIENTS} clients and "
                             f"at most {MAX_PHASE_S} s")
        phases.append((c, s))
    return phases


def start_server(args) -> tuple[str, str]:
    """Start Serve from the config with bench autoscaling; returns (base URL, app name)."""
    from scalequest.config import load_config
    from scalequest.serve.app import run_serve

    overrides = [
        f"models.smollm2.path={args.model}", f"serve.port={args.port}", "language.enabled=true",
        f"serve.llm.smollm2.autoscaling.max_replicas={args.max_llm_replicas}",
        "serve.llm.smollm2.autoscaling.target_ongoing_requests=2",
        "serve.llm.smollm2.autoscaling.upscale_delay_s=3",
        "serve.llm.smollm2.autoscaling.downscale_delay_s=15",
        "serve.ingress.autoscaling.max_replicas=2", "serve.ingress.autoscaling.target_ongoing_requests=4",
        "serve.ingress.autoscaling.upscale_delay_s=3", "serve.ingress.autoscaling.downscale_delay_s=15",
        "serve.ingress.num_cpus=0.25", "serve.reward.num_cpus=0.25", "serve.limits.max_candidates=8",
        "ray.env_vars.VLLM_CPU_KVCACHE_SPACE=\"1\"", *args.override,
    ]
    cfg = load_config(args.config, overrides)
    run_serve(cfg, blocking=False)
    return f"http://127.0.0.1:{cfg.serve.port}", cfg.serve.app_name


class ReplicaSampler(threading.Thread):
    """Every `period` s: running replicas per deployment (this process must be connected to the cluster)."""

    def __init__(self, app: str, t0: float, period: float = 2.0):
        super().__init__(daemon=True)
        self.app, self.t0, self.period, self.samples, self.stop = app, t0, period, [], threading.Event()

    def run(self):
        from ray import serve

        while not self.stop.is_set():
            try:
                deps = serve.status().applications[self.app].deployments
                running = {name: int(d.replica_states.get("RUNNING", 0)) for name, d in deps.items()}
                self.samples.append({"t": round(time.time() - self.t0, 1), **running})
            except Exception as exc:  # a sample may fail while Serve reconfigures; the next one counts
                self.samples.append({"t": round(time.time() - self.t0, 1), "error": str(exc)[:80]})
            self.stop.wait(self.period)


def client_loop(url: str, body: dict, headers: dict, until: float, out: list, seed0: int, timeout: float):
    import httpx

    with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client:
        k = 0
        while time.time() < until:
            t = time.perf_counter()
            try:
                r = client.post("/v1/questions", json={**body, "seed": seed0 + k})
                ok = r.status_code == 200
                got = len(r.json()["questions"]) if ok else 0
                out.append((time.perf_counter() - t, r.status_code, got))
            except httpx.HTTPError as exc:
                out.append((time.perf_counter() - t, type(exc).__name__, 0))
            k += 1


def run_phase(url, clients, seconds, body, headers, timeout, phase_no) -> dict:
    results: list = []
    until = time.time() + seconds
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(url, body, headers, until, results,
                                                         1_000_000 * phase_no + 10_000 * c, timeout))
               for c in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    lat = sorted(r[0] for r in results if r[1] == 200)
    errors = [r[1] for r in results if r[1] != 200]
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None)
    return dict(clients=clients, seconds=round(wall, 1), ok=len(lat), errors=len(errors),
                error_kinds=sorted({str(e) for e in errors}), req_per_s=round(len(lat) / wall, 3),
                questions_per_s=round(sum(r[2] for r in results) / wall, 3),
                p50_s=round(pct(0.50), 2) if lat else None, p99_s=round(pct(0.99), 2) if lat else None,
                mean_s=round(statistics.mean(lat), 2) if lat else None)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="an already running server (loopback only); default: start one here")
    p.add_argument("--config", default="tiny")
    p.add_argument("--model", default="models/smollm2-135m-instruct", help="folder for models.smollm2.path")
    p.add_argument("--port", type=int, default=8011)
    p.add_argument("--phases", default="1:40,4:60,8:60,1:60", help="clients:seconds,...")
    p.add_argument("--n", type=int, default=1, help="questions per request")
    p.add_argument("--with-solution", action="store_true")
    p.add_argument("--max-llm-replicas", type=int, default=2)
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout (s)")
    p.add_argument("--cooldown", type=float, default=30.0, help="seconds of replica sampling after the load")
    p.add_argument("--override", action="append", default=[], help="extra config override key=value")
    p.add_argument("--out", default="bench/results/serve_load.json")
    args = p.parse_args()
    phases = parse_phases(args.phases)

    url, app = (args.url, "scalequest") if args.url else start_server(args)
    if urlparse(url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"--url: '{url}' is not loopback; this load test only drives 127.0.0.1 / localhost")
    token = os.environ.get("SCALEQUEST_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"n": args.n, "with_solution": args.with_solution}
    t0 = time.time()
    sampler = ReplicaSampler(app, t0)
    sampler.start()
    rows = []
    for i, (clients, seconds) in enumerate(phases):
        start = round(time.time() - t0, 1)
        rows.append({"phase": i, "start_s": start, **run_phase(url, clients, seconds, body, headers,
                                                                 args.timeout, i)})
        print(json.dumps(rows[-1]), flush=True)
    time.sleep(args.cooldown)
    sampler.stop.set()
    sampler.join()
    report(rows, sampler.samples)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"phases": rows, "replicas": sampler.samples, "body": body,
                                          "config": args.config, "model": args.model}, indent=1))
    print(f"\nwritten: {args.out}")


def report(rows: list[dict], samples: list[dict]) -> None:
    print("\n| phase | clients | s | ok | errors | req/s | questions/s | p50 s | p99 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [r[k] for k in ("phase", "clients", "seconds", "ok", "errors", "req_per_s", "questions_per_s",
                                "p50_s", "p99_s")]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print("\nreplicas over time (RUNNING), one line per change:")
    last = None
    for s in samples:
        state = {k: v for k, v in s.items() if k != "t"}
        if state != last:
            print(f"  t={s['t']:>6}s  " + "  ".join(f"{k}={v}" for k, v in sorted(state.items())))
            last = state


if __name__ == "__main__":
    main()
