"""End to end on the real model, in one run: the whole pipeline (`scalequest synthesize`, SmolLM2 by default)
against bare vLLM doing the same generation work phase by phase: questions, verdicts, responses.

  pipeline   `run_synthesis(cfg)`: Ray Data streaming every stage, engine actor, shards. Timed from the engine
             being loaded to the last shard written (its execution record, less the engine load).
  bare vLLM  one in-process `vllm.LLM` (the engines' own kwargs), one phase after another, each phase a single
             `generate` over all of its prompts: the generate stage on every candidate, the judge stage on the
             questions that reached the judge in the pipeline, the responses stage on those that reached the
             solver. The stage objects build the prompts, sampling and per-row seeds, so both sides run the same
             requests (forced verdicts and answers included). Timed around the three phases, engine loaded.

Both count generated tokens from the rows' token columns. The ratio is pipeline tokens/s over bare tokens/s. A
second ratio counts the start-up too: the pipeline's whole execution (engines started, stage actors started while
they load, last shard) against bare vLLM's engine construction plus its three phases.

Run:  .venv/bin/python bench/end_to_end.py [--config tiny] [--candidates 64] [--repeats 3] [key=value ...]
With --repeats N the pairs run one after another and the median ratio is the figure: on this shared 2-core VM
two single pairs 10 minutes apart gave 0.76x and 0.97x, and vLLM's CPU per token moved by a fifth between
them (session 15).
See bench/README.md ("end_to_end.py") for the last figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vllm_steps  # noqa: E402
from generation_throughput import write_json  # noqa: E402
from procs import ProcessSampler  # noqa: E402

log = logging.getLogger("bench.end_to_end")


def pipeline(cfg) -> tuple[list[dict], dict]:
    """Run the pipeline; its rows (id, generator, seed, question, reject_stage, token columns) and timing."""
    import pyarrow.dataset as pads

    from scalequest.pipeline.run import run_synthesis

    run_dir = run_synthesis(cfg)
    report = json.loads((run_dir / "summary.json").read_text())
    [execution] = [json.loads(x) for x in (run_dir / "executions.jsonl").read_text().splitlines()]
    cols = ["id", "generator", "seed", "question", "reject_stage", "question_tokens", "judge_tokens",
            "response_tokens"]
    rows = pads.dataset(str(run_dir / "data"), format="parquet", partitioning="hive").to_table(columns=cols)
    seconds = execution["wall_s"] - report["engine_load_s"]
    tokens = report["tokens_generated"]
    return sorted(rows.to_pylist(), key=lambda r: r["id"]), dict(
        run_dir=str(run_dir), kept=report["kept"], seconds=round(seconds, 1), tokens=tokens,
        tok_s=round(tokens["total"] / seconds, 1), engine_busy_share=report["cost"].get("engine_busy_share"),
        engine_busy_after_load=report["cost"].get("engine_busy_after_load"),
        engine_load_s=report["engine_load_s"], with_start_s=execution["wall_s"])


def reached(rows: list[dict], stage: str) -> list[dict]:
    """Rows that got to `stage` in the pipeline (not rejected by an earlier stage)."""
    from scalequest.schema import FUNNEL_STAGES

    at = FUNNEL_STAGES.index(stage)
    return [r for r in rows if r["reject_stage"] is None or FUNNEL_STAGES.index(r["reject_stage"]) >= at]


def bare(cfg, rows: list[dict]) -> dict:
    """The three phases on one in-process vLLM engine; tokens and seconds per phase."""
    from scalequest.engines.vllm_engine import VLLMEngine
    from scalequest.pipeline.build import formatter, generator_prefixes
    from scalequest.stages.generate_questions import GenerateQuestions
    from scalequest.stages.responses import GenerateResponses
    from scalequest.stages.solvability import JudgeSolvability

    assert len(cfg.models) == 1 or len({g.model for g in cfg.generators} | {cfg.responses.model}) == 1, \
        "one model for every phase (the tiny config's shape)"
    t_load = time.perf_counter()
    engine = VLLMEngine(cfg.models[cfg.responses.model])
    load_s = time.perf_counter() - t_load
    engines = {g.name: engine for g in cfg.generators}
    phases = [
        ("questions", GenerateQuestions(engines, generator_prefixes(cfg), {g.name: g.sampling for g in cfg.generators}),
         rows, ["id", "generator", "seed"], "question_tokens"),
        ("verdicts", JudgeSolvability(cfg.solvability, engine, formatter(cfg, cfg.solvability.model)),
         reached(rows, "solvability") if cfg.solvability.enabled else [], ["question", "seed"], "judge_tokens"),
        ("responses", GenerateResponses(cfg.responses, engine, formatter(cfg, cfg.responses.model)),
         reached(rows, "responses"), ["question", "seed"], "response_tokens"),
    ]
    engine.generate(["Hello"], phases[0][1].samplings[cfg.generators[0].name])  # warm-up, untimed
    out = {}
    try:
        for name, stage, subset, inputs, tokens_col in phases:
            batch = {c: [r[c] for r in subset] for c in inputs}
            t0 = time.perf_counter()
            result = stage(batch) if subset else {tokens_col: []}
            seconds = time.perf_counter() - t0
            out[name] = dict(rows=len(subset), tokens=int(sum(result[tokens_col])), seconds=round(seconds, 1),
                             pipeline_tokens=int(sum(r[tokens_col] or 0 for r in subset)))
    finally:
        engine.close()
    total_s = sum(p["seconds"] for p in out.values())
    total = sum(p["tokens"] for p in out.values())
    return dict(phases=out, seconds=round(total_s, 1), tokens=total, tok_s=round(total / total_s, 1),
                engine_load_s=round(load_s, 1), with_start_s=round(load_s + total_s, 1))


def cpu_by_role(sampler) -> dict[str, float]:
    """Role → CPU seconds (procs.role_of), largest first."""
    return {k: round(v.cpu_s, 1) for k, v in sorted(sampler.roles.items(), key=lambda kv: -kv[1].cpu_s)
            if v.cpu_s >= 0.5}


def _spin(share: float, stop) -> None:
    """Busy for `share` of every 10 ms until `stop` is set (one process = at most one core)."""
    while not stop.is_set():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < share * 0.01:
            pass
        time.sleep((1 - share) * 0.01)


class CpuLoad:
    """`with CpuLoad(cores):` processes at niceness 0 that keep `cores` CPUs busy (0.36 = one process busy 36% of
    the time), the way the pipeline's own processes (Ray's daemons, the driver, stage actors) sit beside vLLM."""

    def __init__(self, cores: float):
        import multiprocessing as mp

        self.stop = mp.Event()
        shares = [1.0] * int(cores) + ([cores % 1] if cores % 1 > 0.01 else [])
        self.procs = [mp.Process(target=_spin, args=(s, self.stop), daemon=True) for s in shares]

    def __enter__(self):
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for p in self.procs:
            p.join()


def one_pair(cfg, candidates: int, burn: float = 0.0, trace: str | None = None) -> tuple[dict, dict]:
    """The pipeline, then bare vLLM on the same rows; both sides' figures and CPU seconds by role. With `burn`,
    bare vLLM once more beside a `CpuLoad(burn)`: what that much CPU taken from vLLM costs on its own. With
    `trace` (a folder `vllm_steps.tracing` was pointed at), each side's vLLM step figures too."""
    seen = vllm_steps.files(trace) if trace else set()
    with ProcessSampler(os.getpid(), every=1.0) as pipe_cpu:
        rows, pipe = pipeline(cfg)
    if trace:
        pipe["vllm_steps"], seen = vllm_steps.summarize(trace, seen), vllm_steps.files(trace)
    with ProcessSampler(os.getpid(), every=1.0) as bare_cpu:
        raw = bare(cfg, rows)
    if trace:
        raw["vllm_steps"] = vllm_steps.summarize(trace, seen)
    pipe["cpu_s_by_role"], raw["cpu_s_by_role"] = cpu_by_role(pipe_cpu), cpu_by_role(bare_cpu)
    if burn:
        with CpuLoad(burn):
            loaded = bare(cfg, rows)
        raw["beside_load"] = dict(cores=burn, tok_s=loaded["tok_s"], seconds=loaded["seconds"],
                                  ratio=round(loaded["tok_s"] / raw["tok_s"], 3))
        print(f"bare vLLM beside a {burn:g}-core load: {loaded['tokens']} tokens in {loaded['seconds']} s = "
              f"{loaded['tok_s']} tok/s, {raw['beside_load']['ratio']:.2f}x bare vLLM alone")
    ratio = pipe["tok_s"] / raw["tok_s"]
    with_start = (pipe["tokens"]["total"] / pipe["with_start_s"]) / (raw["tokens"] / raw["with_start_s"])
    print(f"\n{candidates} candidates, {pipe['kept']} kept ({pipe['run_dir']})")
    print(f"{'phase':10} {'rows':>5} {'bare tokens':>12} {'pipeline tokens':>16} {'bare s':>8}")
    for name, ph in raw["phases"].items():
        print(f"{name:10} {ph['rows']:5} {ph['tokens']:12} {ph['pipeline_tokens']:16} {ph['seconds']:8}")
    print(f"pipeline: {pipe['tokens']['total']} tokens in {pipe['seconds']} s = {pipe['tok_s']} tok/s "
          f"(engine busy {pipe['engine_busy_share']} of its engine-seconds, "
          f"{pipe['engine_busy_after_load']} after load)")
    print(f"bare vLLM: {raw['tokens']} tokens in {raw['seconds']} s = {raw['tok_s']} tok/s")
    print(f"pipeline / bare vLLM: {ratio:.2f}x; load average now {os.getloadavg()}")
    for name, side in (("pipeline", pipe), ("bare vLLM", raw)):
        print(f"CPU-s by role, {name} (start-up included): " +
              ", ".join(f"{k} {v}" for k, v in side["cpu_s_by_role"].items()))
    print(f"with start-up: pipeline {pipe['with_start_s']} s (engine loaded after {pipe['engine_load_s']} s), bare "
          f"{raw['with_start_s']} s (engine loaded in {raw['engine_load_s']} s): {with_start:.2f}x")
    if trace:
        print(vllm_steps.line("vLLM steps, pipeline", pipe["vllm_steps"]))
        print(vllm_steps.line("vLLM steps, bare vLLM", raw["vllm_steps"]))
    return dict(pipeline=pipe, bare=raw, ratio=round(ratio, 3), ratio_with_start=round(with_start, 3))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny")
    p.add_argument("--candidates", type=int, default=64)
    p.add_argument("--repeats", type=int, default=1,
                   help="pipeline/bare pairs, one after the other; the median ratio is the figure (noisy machines)")
    p.add_argument("--burn", type=float, default=0.0, metavar="CORES",
                   help="also run bare vLLM beside busy-loop processes taking this many cores (e.g. the pipeline's "
                        "own non-vLLM share): the ratio that CPU share alone gives")
    p.add_argument("--trace", metavar="FOLDER",
                   help="trace vLLM's steps on both sides into FOLDER (bench/vllm_steps.py): the worker's forward and "
                        "sampling CPU, its share of CPU held, decode batch sizes")
    p.add_argument("--out", default="bench/results/end_to_end.json")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from scalequest.config import load_config

    cfg = load_config(args.config, [f"num_candidates={args.candidates}", *args.overrides])
    if args.trace:
        vllm_steps.tracing(args.trace)  # before Ray or vLLM start any process
    os.environ.update(cfg.ray.env_vars)  # the in-process engine gets the same vLLM settings as the engine actor
    load_start = os.getloadavg()
    pairs = [one_pair(cfg, args.candidates, args.burn, args.trace) for _ in range(args.repeats)]
    ratio = statistics.median(x["ratio"] for x in pairs)
    with_start = statistics.median(x["ratio_with_start"] for x in pairs)
    print(f"\npipeline / bare vLLM over {len(pairs)} pair(s): median {ratio:.2f}x (each: "
          f"{', '.join(str(x['ratio']) for x in pairs)}), with start-up {with_start:.2f}x  (goal >= 0.95x); "
          f"load average {load_start} -> {os.getloadavg()}")
    if args.burn:
        beside = statistics.median(x["bare"]["beside_load"]["ratio"] for x in pairs)
        print(f"bare vLLM beside a {args.burn:g}-core load / bare vLLM alone: median {beside:.2f}x")
    result = dict(config=args.config, candidates=args.candidates, overrides=args.overrides, pairs=pairs,
                  ratio=round(ratio, 3), ratio_with_start=round(with_start, 3),
                  load_avg=[load_start, os.getloadavg()], cpus=os.cpu_count())
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
