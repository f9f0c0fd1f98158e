"""`run_synthesis(cfg, resume=None)`: validate paths, start (or join) Ray, start the shared engines, stream the
Dataset into Parquet shards under <output.dir>/<name>-<timestamp>/data/status={kept,rejected}/ (block by block, as
the run goes on), write the run report. `resume` continues a stopped run (scalequest.pipeline.run_dir).

Test: `pytest tests/pipeline/test_run.py -m ray`.
"""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path

from scalequest.errors import ConfigError, EngineUnavailable, RunInterrupted, TooManyErrors
from scalequest.pipeline.engine_pool import engine_busy, still_loading, stop_engines, wait_loaded
from scalequest.pipeline.preflight import preflight
from scalequest.pipeline.storage import Folder
from scalequest.runtime import daemons_on_last_cpu, init_ray, release_vllm_shm, shm_segments

log = logging.getLogger(__name__)
WRITER_GRACE_S = 1.0
STALE_SHM_S = 10.0  # an unmapped vLLM segment this old is a leftover, not one being set up
LOAD_ERROR_WAIT_S = 30.0  # for a dead engine's load error, once its calls failed
TICK_S = 5.0  # the status line's timer checks this often whether a line is due (output.progress_every_s)


def check_cluster_fits(cfg) -> None:
    """Fail fast when the Ray this run uses has fewer CPUs than the pipeline holds at once, or none of a custom
    resource a placement asks for (it would wait forever). On a cluster (`ray.address` set) only warn: an
    autoscaler may still add nodes."""
    import ray

    from scalequest.pipeline.build import cpu_reservation
    from scalequest.pipeline.plan import stage_plan, used_models

    cluster = ray.cluster_resources()
    placed = [(f"models.{m}.resources", cfg.models[m].resources) for m in sorted(used_models(cfg))]
    placed += [(f"{spec.name}.resources", dict(spec.resources)) for spec in stage_plan(cfg)]
    for key, resources in placed:
        for name, amount in resources.items():
            have = cluster.get(name, 0.0)
            if have >= amount:
                continue
            if not cfg.ray.address:
                raise ConfigError(f"{key}: this Ray has {have:g} of resource '{name}', the placement asks for "
                                  f"{amount:g} — start nodes with `ray start --resources='{{\"{name}\": "
                                  f"{amount:g}}}'` and set ray.address, or remove the key")
            log.warning("%s: the cluster has %g of resource '%s' now, the placement asks for %g: it waits for such "
                        "a node", key, have, name, amount)
    need = cpu_reservation(cfg)
    total, have = sum(need.values()), cluster.get("CPU", 0.0)
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


def run_synthesis(cfg, resume: Folder | Path | str | None = None) -> Folder:
    """Run the pipeline for a validated `SynthesisConfig`, or continue the run in folder `resume`; returns the run
    folder (local or on object storage; `os.fspath` gives a local one's path).

    Shards reach disk block by block while the run goes on. A resumed run makes only the ids no complete shard
    holds, refills the dedup set from the shards and reuses the stored difficulty threshold, so the finished run
    holds every id 0..num_candidates-1 exactly once. Ctrl-C (or SIGTERM, via the CLI) stops it cleanly and
    raises RunInterrupted with the resume command.
    """
    from scalequest.pipeline.run_dir import open_run

    preflight(cfg)
    run_dir = open_run(cfg, resume) if resume is not None else None
    release_vllm_shm(min_age_s=STALE_SHM_S)  # what a killed run left
    shm_before = shm_segments()
    with daemons_on_last_cpu(_pins_daemons(cfg)):
        return _run(cfg, run_dir, shm_before)


def _pins_daemons(cfg) -> bool:
    """Whether this run starts a local Ray whose daemons should keep off vLLM-CPU's compute cores (RayConfig)."""
    import ray

    from scalequest.pipeline.plan import used_models

    models = [cfg.models[m] for m in used_models(cfg)]
    return (cfg.ray.pin_daemons and not cfg.ray.address and not ray.is_initialized() and bool(models)
            and all(m.num_gpus == 0 and m.tensor_parallel_size == 1 for m in models))


def _run(cfg, run_dir, shm_before: set) -> Folder:
    """Start or join Ray, run (a new run folder unless `run_dir`), stop engines and a Ray it started, release the
    /dev/shm segments that appeared since `shm_before`."""
    from scalequest.pipeline.run_dir import new_run_dir

    started = init_ray(cfg.ray)
    engines: dict = {}
    try:
        check_cluster_fits(cfg)
        run_dir = run_dir or new_run_dir(cfg)
        log.info("run folder: %s", run_dir)
        _execute(cfg, run_dir, engines)
    except KeyboardInterrupt:
        if run_dir is None:
            raise
        interrupted = run_dir
    else:
        interrupted = None
    finally:
        stop_engines(engines)
        if started:
            import ray

            ray.shutdown()
        release_vllm_shm(only=shm_segments() - shm_before)
    if interrupted is not None:
        from scalequest.pipeline.run_dir import resume_command

        raise RunInterrupted(f"stopped; what is on disk in {interrupted} is kept — resume with: "
                             f"{resume_command(interrupted)}")
    return run_dir


def _execute(cfg, run_dir: Folder, engines: dict) -> None:
    """Make the ids not on disk yet (filling `engines` as they start, so the caller can stop them), then write the
    report over everything on disk."""
    import ray

    from scalequest.pipeline.actors import StageLedger
    from scalequest.pipeline.card import write_card
    from scalequest.pipeline.cost import cost_of, record_execution
    from scalequest.pipeline.engine_pool import start_engines
    from scalequest.pipeline.plan import used_models
    from scalequest.pipeline.report import build_report, render_text, write_report
    from scalequest.pipeline.run_dir import DATA_DIR
    from scalequest.pipeline.shards import claim, remaining_ids, scan_shards

    t0 = time.perf_counter()
    token = claim(run_dir)
    if (run_dir / DATA_DIR).exists():
        time.sleep(WRITER_GRACE_S)  # a killed execution's last write may be between its check and its rename
    scan = scan_shards(run_dir)
    todo = remaining_ids(cfg.num_candidates, scan.ids)
    if scan.ids:
        log.info("resuming: %d of %d candidates on disk, %d to make", len(scan.ids), cfg.num_candidates, len(todo))
    ledger = StageLedger.remote()
    load_s = 0.0
    if len(todo):
        started, started_at = time.perf_counter(), time.time()
        try:
            # the stage actors start while the engines load (calls queue on an engine until it is up)
            engines.update(start_engines(cfg.models, used_models(cfg), wait=False))
            _stream(cfg, run_dir, engines, ledger, scan, todo, token)
            load_s = max(0.0, (wait_loaded(engines) or started_at) - started_at)
        finally:  # also when stopped: the cost of every execution adds up in the report
            record_execution(run_dir, cfg, time.perf_counter() - started, len(todo), engine_busy(engines))
    skipped = [] if cfg.difficulty.model_path else ["difficulty: no difficulty.model_path configured"]
    if not cfg.solvability.enabled:
        skipped.append("solvability: solvability.enabled is false")
    if not (cfg.decontam.enabled and cfg.decontam.benchmarks):
        skipped.append("decontam: no decontam.benchmarks listed (or decontam.enabled is false)")
    report = build_report(run_dir / DATA_DIR, ray.get(ledger.snapshot.remote()), time.perf_counter() - t0, skipped,
                          dict(run_dir=str(run_dir), engine_load_s=round(load_s, 1), config_hash=cfg.config_hash(),
                               resumed_with=len(scan.ids), set_aside=[p.uri for p in scan.set_aside]),
                          cost_of(run_dir, cfg), [b.label for b in cfg.decontam.benchmarks],
                          (cfg.difficulty.bin_edges, cfg.difficulty.names))
    write_report(run_dir, report)
    write_card(run_dir, cfg, report)
    log.info("\n%s", render_text(report))


def _stream(cfg, run_dir: Folder, engines: dict, ledger, scan, todo, token: str) -> None:
    """Stream `todo` through the pipeline into shards, printing the status line; stop past max_error_share."""
    import ray

    from scalequest.pipeline.build import build_dataset, new_stores
    from scalequest.pipeline.calibrate import calibration_scores, difficulty_calibration
    from scalequest.pipeline.plan import CLIENT_CPUS
    from scalequest.pipeline.progress import Progress, RayMetrics
    from scalequest.pipeline.run_dir import THRESHOLD_FILE, resume_command
    from scalequest.pipeline.shards import WriteShards

    progress = Progress(cfg.num_candidates, len(scan.ids), scan.kept, cfg.output.progress_every_s,
                        lambda: {k: v["rows"] for k, v in ray.get(ledger.snapshot.remote()).items()},
                        metrics=RayMetrics(run_dir.name), loading=lambda: still_loading(engines))
    ticking = progress.ticking(min(cfg.output.progress_every_s, TICK_S))  # also while engines load, calibrate
    try:
        stores = new_stores(cfg)
        refill(stores, scan.files, cfg)  # a question kept before a stop still blocks its copies after it
        calibration = (difficulty_calibration(cfg, lambda: calibration_scores(cfg, engines, todo),
                                              run_dir / THRESHOLD_FILE) if cfg.difficulty.model_path else None)
        ds = build_dataset(cfg, engines, ledger, todo, stores, calibration)
        ds = ds.map_batches(WriteShards(run_dir, token), batch_size=None, batch_format="pyarrow",
                            num_cpus=CLIENT_CPUS)
        for summary in ds.iter_batches(batch_size=None, batch_format="numpy"):
            progress.add(summary)
            if progress.too_many_errors(cfg.max_error_share):
                raise TooManyErrors(
                    f"{progress.errors} rows failed in stages, over max_error_share={cfg.max_error_share} of the "
                    f"{progress.done - progress.start_done} made so far; their reject reasons ('error: …') and "
                    f"the stage actors' logs say why — fix the cause, then resume with {resume_command(run_dir)} "
                    f"(raise max_error_share to accept them)")
    except TooManyErrors:
        raise
    except Exception as exc:
        gone = engine_gone(exc)
        if gone is None:
            raise
        wait_loaded(engines, timeout_s=LOAD_ERROR_WAIT_S)  # an engine that failed to load says why, by model
        raise EngineUnavailable(f"{gone} — what is on disk in {run_dir} is kept; resume with "
                                f"{resume_command(run_dir)}") from exc
    finally:
        ticking.set()
    log.info("%s", progress.line())


def engine_gone(exc: BaseException) -> str | None:
    """The message of the EngineUnavailable behind a failed execution, if any. Ray Data wraps a stage's error and
    Ray ships it between processes as text (the chain of causes does not travel), so its last
    `EngineUnavailable: …` line is read when the chain has none."""
    import ray

    seen, cur = set(), exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, EngineUnavailable) and not isinstance(cur, ray.exceptions.RayError):
            return str(cur).strip()
        cur = cur.__cause__ or getattr(cur, "cause", None) or cur.__context__
    found = re.findall(r"EngineUnavailable: (.+)", str(exc))
    return found[-1].strip() if found else None


def refill(stores: dict, files: list, cfg) -> None:
    """Put what earlier executions recorded back into the run's stores: the question hashes that passed dedup into
    the seen set, the signatures of the questions that passed near-dup into the LSH index."""
    from scalequest.pipeline.shards import dedup_hashes, near_dup_rows
    from scalequest.stages.near_dup import signatures

    if not files:
        return
    if "dedup" in stores:
        for hashes in dedup_hashes(files):
            stores["dedup"].record(hashes)
    if "near_dup" in stores:
        t0, n = time.perf_counter(), 0
        for ids, questions in near_dup_rows(files):
            stores["near_dup"].insert(ids, signatures(questions, cfg.near_dup))
            n += len(ids)
        log.info("near-dup index refilled with %d questions in %.1f s", n, time.perf_counter() - t0)
