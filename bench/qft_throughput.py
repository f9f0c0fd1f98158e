"""QFT training throughput and memory on CPU, with and without DeepSpeed, measured side by side in one run.

Every variant runs the real QFT job (`scalequest.train.qft`: same model, questions, seed, steps and batch) as a Ray
Train TorchTrainer on `--workers` CPU workers (gloo):
  (a) ddp           plain PyTorch DDP (no DeepSpeed)
  (b) zero2         DeepSpeed ZeRO-2 with the CPU workarounds (scalequest/train/deepspeed/zero2.json)
  (+) any other packaged DeepSpeed config named with --deepspeed (zero3, zero2_offload)

Variants alternate in rounds (`--repeats`; the table shows medians). Per worker: steady samples/s (optimizer steps
after the first, which pays for warm-up and DeepSpeed set-up) and peak RSS (ru_maxrss of the worker process, so it
includes torch/transformers themselves and the final export). The table also shows each variant's ratio to ddp. The first DeepSpeed use JIT-compiles its CPU ops (cached in TORCH_EXTENSIONS_DIR).

Run:  .venv/bin/python bench/qft_throughput.py [--model models/smollm2-135m-instruct] [--steps 6]
      [--deepspeed zero2 ...] [--repeats 1] [--workers 2] [--per-device-batch 4]
      [--out bench/results/qft_throughput.json]
Default model: models/smollm2-135m-instruct if it is prepared, else a tiny random Llama built on the fly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

log = logging.getLogger("bench.qft_throughput")
SMOLLM2 = Path("models/smollm2-135m-instruct")
DATA = ["../shared/data/gsm8k/train.jsonl", "../shared/data/math/train.jsonl"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="HF causal-LM folder (default: SmolLM2 if prepared, else tiny).")
    p.add_argument("--steps", type=int, default=6, help="Optimizer steps per variant (the first is not timed).")
    p.add_argument("--deepspeed", nargs="*", default=["zero2"], help="DeepSpeed configs to compare with ddp.")
    p.add_argument("--workers", type=int, default=2, help="Ray Train CPU workers.")
    p.add_argument("--per-device-batch", type=int, default=4, help="Questions per worker per step.")
    p.add_argument("--max-length", type=int, default=256, help="Token limit per example.")
    p.add_argument("--data", nargs="*", default=DATA, help="Question sources (JSONL/Parquet).")
    p.add_argument("--repeats", type=int, default=1, help="Rounds of (ddp, deepspeed…), interleaved; medians shown.")
    p.add_argument("--out", default="bench/results/qft_throughput.json", help="Where to write the JSON.")
    return p.parse_args(argv)


def pick_model(arg: str | None, scratch: Path) -> Path:
    if arg:
        return Path(arg).resolve()
    if (SMOLLM2 / "config.json").is_file():
        return SMOLLM2.resolve()
    from scalequest.engines.prepare import build_tiny_llama

    return build_tiny_llama(scratch / "tiny-llama")


def run_variant(variant: str, model: Path, args, scratch: Path) -> list[dict]:
    """One QFT job; returns each worker's stats record."""
    from scalequest.config import load_config
    from scalequest.train.launcher import run_training
    from scalequest.train.qft import build_qft_job, sft_loop

    batch = args.per_device_batch * args.workers
    data = "[" + ", ".join(args.data) + "]"
    cfg = load_config("tiny", [
        f"train.qft.base_model={model}", f"train.qft.data={data}", f"train.qft.max_questions={batch * args.steps}",
        f"train.qft.max_steps={args.steps}", f"train.qft.per_device_batch={args.per_device_batch}",
        f"train.qft.effective_batch={batch}", f"train.qft.max_length={args.max_length}",
        "train.qft.save_steps=1000000", f"train.qft.output_dir={scratch / variant / 'model'}",
        f"train.ray.num_workers={args.workers}", f"train.ray.storage_path={scratch / 'runs'}",
        f"train.ray.deepspeed={'null' if variant == 'ddp' else variant}",
    ])
    loop_config, ray_cfg, _ = build_qft_job(cfg)
    stats = scratch / variant / "stats"
    t0 = time.perf_counter()
    run_training(sft_loop, loop_config.model_copy(update={"stats_path": str(stats)}), ray_cfg, f"bench-{variant}")
    wall = time.perf_counter() - t0
    records = [json.loads(p.read_text()) for p in sorted(stats.glob("rank*.json"))]
    for r in records:
        r |= {"variant": variant, "job_wall_s": wall}
    return records


def table(results: dict[str, list[list[dict]]]) -> str:
    """One row per variant: medians over rounds of the per-worker mean samples/s and the per-worker max RSS."""
    sums = {variant: summarize(rounds) for variant, rounds in results.items()}
    base = sums.get("ddp")
    header = ("| variant | workers | samples/s per worker | samples/s all workers | peak RSS per worker (MiB) | "
              "first step (s) | job wall (s) | vs ddp: samples/s | vs ddp: RSS |")
    rows = [header, "|---|---|---|---|---|---|---|---|---|"]
    for variant, m in sums.items():
        ratio = f"{m['sps'] / base['sps']:.2f}x | {m['rss'] / base['rss']:.2f}x" if base else "— | —"
        rows.append(f"| {variant} | {m['workers']} | {m['sps']:.2f} | {m['sps'] * m['workers']:.2f} | {m['rss']:.0f} | "
                    f"{m['first']:.1f} | {m['wall']:.0f} | {ratio} |")
    return "\n".join(rows)


def summarize(rounds: list[list[dict]]) -> dict:
    def median(fn):
        return statistics.median(fn(recs) for recs in rounds)

    return {"sps": median(lambda recs: statistics.mean(r["samples_per_s"] for r in recs)),
            "rss": median(lambda recs: max(r["peak_rss_mib"] for r in recs)),
            "first": median(lambda recs: max(r["first_step_s"] for r in recs)),
            "wall": median(lambda recs: recs[0]["job_wall_s"]), "workers": len(rounds[0])}


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="qft-bench-") as tmp:
        scratch = Path(tmp)
        model = pick_model(args.model, scratch)
        results: dict[str, list[list[dict]]] = {}
        for round_ in range(args.repeats):
            for variant in ["ddp", *args.deepspeed]:
                log.info("round %d: variant %s on %s", round_ + 1, variant, model)
                results.setdefault(variant, []).append(run_variant(variant, model, args, scratch / f"r{round_}"))
    text = table(results)
    print(f"\nQFT on CPU: {model.name}, {args.steps} steps × {args.per_device_batch} questions × {args.workers} "
          f"workers, max length {args.max_length}, {args.repeats} round(s) ({platform.node()}, {os.cpu_count()} "
          f"cores, load average at the end {os.getloadavg()[0]:.1f})\n{text}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": str(model), "args": vars(args), "results": results, "table": text},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
