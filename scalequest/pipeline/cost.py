"""What a kept pair costs, over every execution of a run (a resumed run adds up).

Each execution appends one line to <run>/executions.jsonl when it ends (finished, stopped or failed): its wall
seconds with engines up, and per model the engine-seconds (wall × replicas) and GPU-seconds (× num_gpus). The
run report divides them by the kept pairs on disk and projects to 1M kept pairs at `cost.engine_hour_usd`,
beside the paper's figure.

Engine-seconds count the whole time an engine is held, loading and idle moments included: that is what a
cluster bills. Beside them, the busy share: of those engine-seconds, the ones with at least one call in flight
(the engine actors count them); and the same share of the seconds after the engines loaded, i.e. how well the
stages keep the engines fed (a short run's load alone makes the first share low). Test:
tests/pipeline/test_cost.py.
"""

from __future__ import annotations

import json
import time

from scalequest.pipeline.storage import Folder, as_folder

EXECUTIONS_FILE = "executions.jsonl"
# ScaleQuest paper (arXiv 2410.18693), Table 6: 1M pairs from two generators in 522.9 A100-hours, $680.8
PAPER = {"gpu_hours_per_1m": 522.9, "usd_per_1m": 680.8, "hardware": "A100"}


def record_execution(run_dir: Folder, cfg, engine_wall_s: float, made: int, busy: dict | None = None) -> None:
    """Append this execution's engine time (engines from start-up to the end of streaming) to the run folder;
    `busy`: model → {"up_s": …, "busy_s": …} over its replicas (`engine_pool.engine_busy`: seconds since loaded,
    and of those with a call in flight), where the engines answered."""
    from scalequest.pipeline.plan import used_models

    models = {m: cfg.models[m] for m in sorted(used_models(cfg))}
    record = {
        "ended_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": round(engine_wall_s, 2),
        "candidates": made,
        "engine_s": {m: round(engine_wall_s * c.replicas, 2) for m, c in models.items()},
        "gpu_s": {m: round(engine_wall_s * c.replicas * c.num_gpus, 2) for m, c in models.items()},
        "busy_s": {m: b["busy_s"] for m, b in (busy or {}).items() if m in models},
        "up_s": {m: b["up_s"] for m, b in (busy or {}).items() if m in models and "up_s" in b},
    }
    (as_folder(run_dir) / EXECUTIONS_FILE).append_text(json.dumps(record) + "\n")


def executions(run_dir: Folder) -> list[dict]:
    path = as_folder(run_dir) / EXECUTIONS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def cost_of(run_dir: Folder, cfg):
    """`kept, tokens -> cost dict` for the report (kept pairs and generated tokens come from the shards)."""
    runs = executions(run_dir)
    engine_s: dict[str, float] = {}
    busy_s: dict[str, float] = {}
    timed_s: dict[str, float] = {}  # engine-seconds of the executions that recorded busy time
    loaded: dict[str, tuple[float, float]] = {}  # model → (busy, up) seconds after load, where recorded
    gpu_s = 0.0
    for r in runs:
        for m, s in r["engine_s"].items():
            engine_s[m] = engine_s.get(m, 0.0) + s
            if m in r.get("busy_s", {}):
                busy_s[m] = busy_s.get(m, 0.0) + r["busy_s"][m]
                timed_s[m] = timed_s.get(m, 0.0) + s
            if m in r.get("up_s", {}):
                b, u = loaded.get(m, (0.0, 0.0))
                loaded[m] = (b + r["busy_s"][m], u + r["up_s"][m])
        gpu_s += sum(r["gpu_s"].values())
    price = cfg.cost.engine_hour_usd

    def cost(kept: int, tokens: dict[str, int]) -> dict:
        per = max(kept, 1)
        hours = sum(engine_s.values()) / 3600
        unit = "GPU-hours" if gpu_s > 0 else "engine-hours"
        billed = gpu_s / 3600 if gpu_s > 0 else hours
        return dict(
            executions=len(runs), kept=kept, engine_hour_usd=price, unit=unit,
            tokens_per_kept={k: round(v / per, 1) for k, v in tokens.items()},
            engine_s_per_kept={m: round(s / per, 3) for m, s in engine_s.items()},
            engine_busy_share={m: round(b / timed_s[m], 3) for m, b in busy_s.items() if timed_s[m] > 0},
            engine_busy_after_load={m: round(b / u, 3) for m, (b, u) in loaded.items() if u > 0},
            per_1m_kept={"hours": round(billed / per * 1e6, 1), "usd": round(billed / per * 1e6 * price, 1)},
            paper_per_1m=PAPER,
        )

    return cost


def render_cost(c: dict) -> list[str]:
    """The report's cost block, as text lines."""
    if not c["kept"]:
        return ["cost: no kept pair yet, so no cost per pair"]
    t = c["tokens_per_kept"]
    busy, fed = c.get("engine_busy_share", {}), c.get("engine_busy_after_load", {})
    engines = ", ".join(f"{m} {s:g}" + (f" (busy {busy[m]:.0%}" if m in busy else "")
                        + (f", {fed[m]:.0%} after load" if m in fed else "") + (")" if m in busy else "")
                        for m, s in c["engine_s_per_kept"].items())
    p = c["paper_per_1m"]
    return [
        (f"cost per kept pair ({c['kept']} kept, {c['executions']} execution(s)): {t['total']:g} generated tokens "
        f"(questions {t['question_tokens']:g}, judge {t['judge_tokens']:g}, responses {t['response_tokens']:g}); "
        f"engine-seconds {engines}"),
        (f"projected to 1M kept pairs: {c['per_1m_kept']['hours']:,.1f} {c['unit']}, "
        f"${c['per_1m_kept']['usd']:,.0f} at ${c['engine_hour_usd']}/hour (cost.engine_hour_usd)"),
        (f"paper (2 generators, 7B models): {p['gpu_hours_per_1m']} {p['hardware']} GPU-hours, ${p['usd_per_1m']} "
        "per 1M pairs"),
    ]
