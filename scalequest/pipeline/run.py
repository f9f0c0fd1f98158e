"""`run_synthesis(cfg)`: validate paths, start (or join) Ray, start the shared engines, stream the Dataset into
Parquet shards under <output.dir>/<name>-<timestamp>/data/status={kept,rejected}/, write the run report.

Test: `pytest tests/pipeline/test_run.py -m ray`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from scalequest.errors import ConfigError
from scalequest.pipeline.preflight import preflight

log = logging.getLogger(__name__)


def init_ray(rcfg) -> bool:
    """Connect to `rcfg.address` or start a local Ray; returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    env = {"runtime_env": {"env_vars": dict(rcfg.env_vars)}} if rcfg.env_vars else {}
    if rcfg.address:
        ray.init(address=rcfg.address, **env)
    else:
        os.environ.update(rcfg.env_vars)  # the driver builds tokenizers / reads config too
        store = int(rcfg.object_store_gib * (1 << 30)) if rcfg.object_store_gib else None
        ray.init(num_cpus=rcfg.num_cpus, object_store_memory=store, include_dashboard=False, **env)
    return True


def check_cluster_fits(cfg) -> None:
    """Fail fast when the Ray this run uses has fewer CPUs than the pipeline holds at once (it would wait forever).

    On a cluster (`ray.address` set) only warn: an autoscaler may still add nodes.
    """
    import ray

    from scalequest.pipeline.build import cpu_reservation

    need = cpu_reservation(cfg)
    total, have = sum(need.values()), ray.cluster_resources().get("CPU", 0.0)
    if have >= total:
        return
    parts = ", ".join(f"{k} {v:g}" for k, v in need.items())
    if cfg.ray.address:
        log.warning("the pipeline holds %g Ray CPUs (%s) but the cluster has %g now: it waits for the autoscaler",
                    total, parts, have)
        return
    raise ConfigError(
        f"ray.num_cpus: the pipeline holds {total:g} Ray CPUs at once ({parts}) but this Ray has {have:g} — set "
        f"ray.num_cpus={math.ceil(total)} or more (logical CPUs may exceed the cores: stage actors mostly wait), or, "
        f"when this process already runs a Ray (ray.init earlier, or a ray.data call started one), ray.shutdown() "
        f"it first so the run starts its own")


def new_run_dir(cfg) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.output.dir) / f"{cfg.name}-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = Path(cfg.output.dir) / f"{cfg.name}-{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def run_synthesis(cfg) -> Path:
    """Run the whole pipeline for a validated `SynthesisConfig`; returns the run folder."""
    import ray

    from scalequest.pipeline.actors import StageLedger
    from scalequest.pipeline.build import build_dataset, used_models
    from scalequest.pipeline.engine_pool import start_engines, stop_engines
    from scalequest.pipeline.report import build_report, render_text, write_report

    preflight(cfg)
    started = init_ray(cfg.ray)
    engines = {}
    t0 = time.perf_counter()
    try:
        check_cluster_fits(cfg)
        run_dir = new_run_dir(cfg)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        log.info("run folder: %s", run_dir)
        ledger = StageLedger.remote()
        engines = start_engines(cfg.models, used_models(cfg))
        load_s = time.perf_counter() - t0
        ds = build_dataset(cfg, engines, ledger)
        data_dir = run_dir / "data"
        ds.write_parquet(str(data_dir), partition_cols=["status"], max_rows_per_file=cfg.output.rows_per_shard)
        wall = time.perf_counter() - t0
        skipped = [] if cfg.difficulty.model_path else ["difficulty: no difficulty.model_path configured"]
        if not cfg.solvability.enabled:
            skipped.append("solvability: solvability.enabled is false")
        report = build_report(data_dir, ray.get(ledger.snapshot.remote()), wall, skipped,
                              dict(run_dir=str(run_dir), engine_load_s=round(load_s, 1),
                                   config_hash=cfg.config_hash()))
        write_report(run_dir, report)
        log.info("\n%s", render_text(report))
    finally:
        stop_engines(engines)
        if started:
            ray.shutdown()
    return run_dir
