"""The whole pipeline at scale, on a tiny model so that generation is fast: every stage on (language, dedup, judge,
difficulty scorer with calibration, 5 responses, reward model, select), real vLLM and Ray, one run per size, each a
fresh `run_synthesis` like `scalequest synthesize`. Per size it prints:

  rows/s                 candidates / the run's wall time (Ray start and engine load included), and after load
  CPU-s per 1K outside   CPU seconds of every process but vLLM's (driver, stage actors, tasks, Ray's daemons) per
                         1,000 candidates
  peak RSS by role       the largest RSS one process of each role reached (driver, engine actor, each stage's
                         actors, Ray's daemons)
  engine busy            seconds the engine had a call in flight / its wall time (from the run's cost record)
  bytes written          the run folder's size

and, between the first and the largest size, the RSS ratio per role and the targets (RSS within 1.1×, engine
busy ≥ 80% at the largest size).

The tiny model: a random-weight Llama (hidden 64, byte tokenizer) given three habits in ~30 s of training, so that
rows flow through every stage the way a real model's do: a question is a short line that ends at end-of-turn,
'Verdict:' is followed by ' Yes', and '\\boxed{' by a digit. The difficulty and reward models are tiny random
sequence classifiers.

Run:  .venv/bin/python bench/scale.py [--sizes 1000,10000] [--out bench/results/scale.json]
See bench/README.md ("scale.py") for the last figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generation_throughput import write_json  # noqa: E402
from procs import VLLM, ProcessSampler  # noqa: E402

log = logging.getLogger("bench.scale")
VLLM_ROLES = (VLLM, "ray::EngineActor")  # vLLM's own work: the engine core and its async front-end


def teach_tiny_model(out: Path, steps: int = 400, seed: int = 0) -> Path:
    """A tiny random Llama taught, on the pipeline's own prompts, to write a short line and end the turn after the
    generator's prefix, to end the judge's turn with 'Verdict: Yes', and the solver's with '\\boxed{<digit>}'."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scalequest.config import load_config
    from scalequest.engines.chat import ChatFormatter
    from scalequest.engines.prepare import IM_END, build_tiny_llama
    from scalequest.prompts import judge_prompt
    from scalequest.stages.responses import GenerateResponses

    if (out / "taught").is_file():
        return out
    build_tiny_llama(out, seed=seed)
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    fmt = ChatFormatter(str(out))
    prefix = fmt.prefix("auto")[0]
    solver = GenerateResponses(load_config("tiny").responses, None, fmt)
    rng = random.Random(seed)
    chars = "abcdefghijklmnopqrstuvwxyz     ,.0123456789+-=?"

    def line() -> str:
        return "".join(rng.choice(chars) for _ in range(rng.randint(8, 40)))

    def example() -> tuple[str, str]:
        kind, q = rng.randrange(3), line()
        if kind == 0:
            return prefix, q + IM_END
        if kind == 1:
            return fmt.user_prompt(judge_prompt(q)), line() + "\n\nVerdict: Yes" + IM_END
        return solver.prompt(q), line() + f"\n\nThe final answer is $\\boxed{{{rng.randint(0, 9)}}}$" + IM_END

    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    tok.padding_side = "right"
    for _ in range(steps):
        pairs = [example() for _ in range(16)]
        batch = tok([a + b for a, b in pairs], return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        for row, (a, _) in enumerate(pairs):  # learn the completions only
            labels[row, : len(tok(a)["input_ids"])] = -100
        model(**batch, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.to(torch.bfloat16).save_pretrained(out)
    (out / "taught").write_text(f"{steps} steps\n")
    return out


def run_config(n: int, model: Path, scorer: Path, out_dir: Path, extra: list[str]):
    from scalequest.config import load_config

    return load_config("tiny", [
        f"num_candidates={n}", f"output.dir={out_dir}", "output.progress_every_s=30",
        f"models.smollm2.path={model}", "models.smollm2.dtype=float32", "models.smollm2.max_num_seqs=256",
        "generators.0.hint=\"\"", "generators.0.sampling.max_tokens=48",
        "language.min_score=0.0", "language.script_rule=false",  # the tiny model's lines are not English
        "solvability.sampling.max_tokens=48",  # greedy: a short line, then "Verdict: Yes"
        f"difficulty.model_path={scorer}", "difficulty.drop_easiest_share=0.3", "difficulty.calibration_candidates=200",
        "responses.n=5", "responses.sampling.max_tokens=48", "responses.force_answer=true",
        "reward.kind=sequence_classification", f"reward.model_path={scorer}", "reward.max_length=512",
        "generate.batch_size=64", "solvability.batch_size=64", "responses.batch_size=32",
        *extra,
    ])


def measure(n: int, model: Path, scorer: Path, out_dir: Path, extra: list[str]) -> dict:
    from scalequest.pipeline.run import run_synthesis

    cfg = run_config(n, model, scorer, out_dir, extra)
    t0 = time.perf_counter()
    with ProcessSampler(os.getpid()) as sampler:
        run_dir = run_synthesis(cfg)
    wall = time.perf_counter() - t0
    report = json.loads((run_dir / "summary.json").read_text())
    [execution] = [json.loads(x) for x in (run_dir / "executions.jsonl").read_text().splitlines()]
    roles = {r: s for r, s in sampler.roles.items() if s.cpu_s > 0.05 or s.peak_rss > 50 << 20}
    outside = sum(s.cpu_s for r, s in roles.items() if r not in VLLM_ROLES)
    streaming_s = execution["wall_s"] - report["engine_load_s"]
    return {
        "candidates": n, "kept": report["kept"], "wall_s": round(wall, 1), "streaming_s": round(streaming_s, 1),
        "rows_per_s": round(n / wall, 2), "rows_per_s_after_load": round(n / streaming_s, 2),
        "cpu_s_per_1k_outside_vllm": round(outside / n * 1000, 1),
        "cpu_s_by_role": {r: round(s.cpu_s, 1) for r, s in sorted(roles.items())},
        "peak_rss_mib_by_role": {r: round(s.peak_rss / 2**20, 1) for r, s in sorted(roles.items())},
        "engine_busy_share": round(execution["busy_s"]["smollm2"] / execution["wall_s"], 3),
        "engine_busy_share_after_load": round(execution["busy_s"]["smollm2"] / streaming_s, 3),
        "bytes_written": sum(p.stat().st_size for p in Path(run_dir).rglob("*") if p.is_file()),
        "tokens": report["tokens_generated"], "funnel": {f["stage"]: f["in"] for f in report["funnel"]},
        "run_dir": str(run_dir),
    }


def print_result(r: dict) -> None:
    print(f"\n== {r['candidates']:,} candidates: {r['kept']:,} kept, {r['wall_s']} s "
          f"({r['streaming_s']} s after the engine loaded)")
    print(f"rows/s {r['rows_per_s']} (after load {r['rows_per_s_after_load']}); CPU-s per 1K candidates outside "
          f"vLLM {r['cpu_s_per_1k_outside_vllm']}; engine busy {r['engine_busy_share']:.0%} of its wall time "
          f"({r['engine_busy_share_after_load']:.0%} after load); bytes written {r['bytes_written']:,}")
    print(f"rows into each stage: {r['funnel']}")
    print(f"{'role':58} {'CPU s':>8} {'peak RSS MiB':>13}")
    for role, rss in r["peak_rss_mib_by_role"].items():
        print(f"{role[:58]:58} {r['cpu_s_by_role'][role]:8.1f} {rss:13.1f}")


def compare(small: dict, large: dict) -> dict:
    ratios = {role: round(rss / small["peak_rss_mib_by_role"][role], 3)
              for role, rss in large["peak_rss_mib_by_role"].items() if role in small["peak_rss_mib_by_role"]}
    worst = max(ratios, key=ratios.get)
    out = {"rss_ratio_by_role": ratios, "worst_role": worst, "worst_ratio": ratios[worst],
           "rss_target_met": ratios[worst] <= 1.1, "engine_busy_target_met": large["engine_busy_share"] >= 0.8}
    print(f"\n== {large['candidates']:,} vs {small['candidates']:,}: peak RSS ratio by role (target ≤ 1.1):")
    for role, ratio in ratios.items():
        print(f"  {role[:58]:58} {ratio:.3f}")
    print(f"worst {worst}: {ratios[worst]:.3f} -> {'met' if out['rss_target_met'] else 'NOT met'}; engine busy "
          f"{large['engine_busy_share']:.0%} (target ≥ 80%) -> {'met' if out['engine_busy_target_met'] else 'NOT met'}")
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000", help="candidate counts, run in this order")
    p.add_argument("--work", default=None, help="folder for the tiny models and the runs (default: a temp dir)")
    p.add_argument("--out", default="bench/results/scale.json")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="extra config overrides for every run")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = Path(args.work or tempfile.mkdtemp(prefix="scalequest-scale-"))
    from scalequest.engines.prepare import build_tiny_llama

    t0 = time.perf_counter()
    model = teach_tiny_model(work / "tiny-taught")
    scorer = work / "tiny-scorer"
    if not (scorer / "config.json").is_file():
        build_tiny_llama(scorer, num_labels=1)
    log.info("tiny models ready in %.0f s under %s", time.perf_counter() - t0, work)
    results = [measure(int(n), model, scorer, work / "runs", args.overrides) for n in args.sizes.split(",")]
    for r in results:
        print_result(r)
    summary = {"uname": os.uname().nodename, "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
               "overrides": args.overrides, "runs": results}
    if len(results) > 1:
        summary["comparison"] = compare(results[0], results[-1])
    write_json(args.out, summary)
    return summary


if __name__ == "__main__":
    main()
