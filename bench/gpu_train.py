"""GPU check of the training path and raw model throughput, for a lent GPU machine without Ray or vLLM.

What runs (each variant in a fresh process, on one GPU, the project's own training code called in-process):
  qft:plain   `scalequest.train.qft.sft_loop` with train.ray.use_gpu=true, no DeepSpeed (bf16 autocast)
  qft:zero2   the same with DeepSpeed ZeRO-2 (scalequest/train/deepspeed/zero2.json)
  qft:zero3   the same with DeepSpeed ZeRO-3 (zero3.json; the export gathers the shards)
  dpo         `scalequest.train.qpo.dpo_loop` outside Ray Train (the QPO step) on pairs made from the data
  generate    transformers `generate` on the exported qft:plain model (bf16): new tokens/s at several batch sizes

The model has SmolLM2-135M's shape and tokenizer (`--model-dir`: a folder with config.json and the tokenizer
files; weights are random, seed 0), so the figures are the shape's, not a trained model's. Per variant: steady
samples/s (steps after the first), first-step seconds, peak GPU memory, the first and last loss, and a check that
the exported folder holds every parameter in bf16.

Run (on the GPU machine, with TRL/DeepSpeed/datasets importable):
    python bench/gpu_train.py --model-dir .gpu/smollm2 --data .gpu/data/gsm8k_train.jsonl .gpu/data/math_train.jsonl
        [--steps 30] [--batch 16] [--max-length 256] [--out $OUT/gpu_train.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("bench.gpu_train")
QFT_VARIANTS = ("plain", "zero2", "zero3")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", default="models/smollm2-135m-instruct", help="config.json + tokenizer files.")
    p.add_argument("--data", nargs="+", default=["../shared/data/gsm8k/train.jsonl", "../shared/data/math/train.jsonl"])
    p.add_argument("--steps", type=int, default=30, help="Optimizer steps per QFT variant.")
    p.add_argument("--batch", type=int, default=16, help="Questions per step (one GPU, no accumulation).")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--variants", nargs="*", default=[f"qft:{v}" for v in QFT_VARIANTS] + ["dpo", "generate"])
    p.add_argument("--gen-batches", type=int, nargs="*", default=[64, 256])
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--out", default="bench/results/gpu_train.json")
    p.add_argument("--cpu", action="store_true", help="Run on CPU (to try the script here; tiny sizes).")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant in this process
    p.add_argument("--scratch", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_base(model_dir: Path, out: Path) -> Path:
    """A random-weight model of `model_dir`'s shape with its tokenizer (fp32 on disk)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir), dtype=torch.float32)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def export_check(folder: Path, base: Path) -> dict:
    """Every base parameter is in the exported safetensors, in bf16, with its shape."""
    from safetensors import safe_open

    def tensors(path: Path) -> dict:
        found = {}
        for shard in sorted(path.glob("*.safetensors")):
            with safe_open(str(shard), "pt") as f:
                found |= {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118 (a safetensors handle)
        return found

    got, want = tensors(folder), tensors(base)
    missing = sorted(set(want) - set(got))
    wrong_shape = sorted(k for k in want if k in got and got[k][0] != want[k][0])
    dtypes = sorted({d for _, d in got.values()})
    return {"tensors": len(got), "missing": missing[:5], "wrong_shape": wrong_shape[:5], "dtypes": dtypes,
            "ok": not missing and not wrong_shape and dtypes == ["BF16"]}


def run_qft(variant: str, args, scratch: Path, base: Path) -> dict:
    from scalequest.config import load_config
    from scalequest.train.qft import build_qft_job, sft_loop

    data = "[" + ", ".join(str(Path(d).resolve()) for d in args.data) + "]"
    out = scratch / f"qft-{variant}"
    cfg = load_config("tiny", [
        f"train.qft.base_model={base}", f"train.qft.data={data}", f"train.qft.max_questions={args.batch * args.steps}",
        f"train.qft.max_steps={args.steps}", f"train.qft.per_device_batch={args.batch}",
        f"train.qft.effective_batch={args.batch}", f"train.qft.max_length={args.max_length}",
        f"train.qft.output_dir={out / 'model'}", "train.ray.num_workers=1", f"train.ray.use_gpu={not args.cpu}",
        f"train.ray.deepspeed={'null' if variant == 'plain' else variant}",
    ])
    loop_config, _, _ = build_qft_job(cfg)
    t0 = time.perf_counter()
    sft_loop(loop_config.model_copy(update={"stats_path": str(out / "stats"), "work_dir": str(out / "work"),
                                            "in_process": True}).model_dump())
    record = json.loads((out / "stats" / "rank0.json").read_text())
    return record | {"wall_s": time.perf_counter() - t0, "export": export_check(out / "model", base)}


def run_dpo(args, scratch: Path, base: Path) -> dict:
    from transformers import AutoTokenizer

    from scalequest.config import QPOConfig, RayTrainConfig
    from scalequest.train.data import load_questions
    from scalequest.train.qft import qft_prompt
    from scalequest.train.qpo import DPOLoop, dpo_loop, dpo_rows

    tok = AutoTokenizer.from_pretrained(base)
    prefix, eos = qft_prompt("auto", None, tok)
    questions = load_questions([str(Path(d).resolve()) for d in args.data], args.batch * args.steps, seed=0)
    pairs = [{"prompt": prefix, "chosen": q, "rejected": " ".join(q.split()[: max(3, len(q.split()) // 2)])}
             for q in questions]
    out = scratch / "dpo"
    q = QPOConfig(qft_model=str(base), optimizer={"model": "unused"}, learning_rate=5e-7, max_steps=args.steps,
                  lr_scheduler="constant", warmup_steps=0, max_length=args.max_length, per_device_batch=args.batch,
                  effective_batch=args.batch)
    t0 = time.perf_counter()
    result = dpo_loop(DPOLoop(hparams=q, ray=RayTrainConfig(num_workers=1, use_gpu=not args.cpu), in_process=True,
                              base_model=str(base), output_dir=str(out / "model"), work_dir=str(out / "work"),
                              rows=dpo_rows(pairs, eos)).model_dump())
    wall = time.perf_counter() - t0
    losses = result["losses"]
    return {"steps": result["global_step"], "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "wall_s": wall, "samples_per_s": None,
            "peak_gpu_mib": gpu_peak_mib(), "train_samples_per_s": result["log_history"][-1].get("train_samples_per_second")}


def run_generate(args, scratch: Path, base: Path) -> dict:
    """New tokens/s of HF generate (bf16, sampling, fixed length) at each batch size; median of 3 timed runs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scalequest.train.qft import qft_prompt

    folder = scratch / "qft-plain" / "model"
    folder = folder if folder.is_dir() else base
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    device = "cpu" if args.cpu else "cuda"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(device).eval()
    prefix, _ = qft_prompt("auto", None, tok)
    rates = {}
    for batch in args.gen_batches:
        enc = tok([prefix] * batch, return_tensors="pt", padding=True).to(device)
        times = []
        for i in range(4):  # the first is warm-up
            sync()
            t0 = time.perf_counter()
            with torch.no_grad():
                model.generate(**enc, do_sample=True, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                               pad_token_id=tok.pad_token_id)
            sync()
            times.append(time.perf_counter() - t0)
        rates[batch] = batch * args.new_tokens / statistics.median(times[1:])
    return {"model": str(folder), "new_tokens": args.new_tokens, "tokens_per_s": rates, "peak_gpu_mib": gpu_peak_mib()}


def gpu_peak_mib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_one(name: str, args, scratch: Path) -> dict:
    base = scratch / "base"
    if name.startswith("qft:"):
        return run_qft(name.split(":", 1)[1], args, scratch, base)
    if name == "dpo":
        return run_dpo(args, scratch, base)
    if name == "generate":
        return run_generate(args, scratch, base)
    raise SystemExit(f"--variants: unknown variant {name!r} (qft:plain, qft:zero2, qft:zero3, dpo, generate)")


def table(results: dict) -> str:
    rows = ["| variant | samples/s | first step (s) | wall (s) | peak GPU (MiB) | loss first → last | export |",
            "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if name == "generate" or "error" in r:
            continue
        loss = f"{r.get('first_loss') or 0:.3f} → {r.get('last_loss') or r.get('train_loss') or 0:.3f}"
        sps = r.get("samples_per_s") or r.get("train_samples_per_s") or 0
        export = r.get("export", {}).get("ok", "—")
        rows.append(f"| {name} | {sps:.1f} | {r.get('first_step_s') or 0:.1f} | {r['wall_s']:.0f} | "
                    f"{r.get('peak_gpu_mib') or 0:.0f} | {loss} | {export} |")
    gen = results.get("generate", {})
    if "tokens_per_s" in gen:
        rows.append("\ngenerate (HF transformers, bf16): " + ", ".join(
            f"batch {b}: {t:,.0f} new tokens/s" for b, t in gen["tokens_per_s"].items()))
    failed = {n: r["error"] for n, r in results.items() if "error" in r}
    return "\n".join(rows) + "".join(f"\nFAILED {n}: {e}" for n, e in failed.items())


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.one:
        result = run_one(args.one, args, Path(args.scratch))
        print("RESULT " + json.dumps(result))
        return
    import torch

    with tempfile.TemporaryDirectory(prefix="gpu-train-") as tmp:
        scratch = Path(tmp)
        build_base(Path(args.model_dir), scratch / "base")
        results = {}
        for name in args.variants:
            log.info("variant %s", name)
            cmd = [sys.executable, __file__, *(argv or sys.argv[1:]), "--one", name, "--scratch", str(scratch)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                tail = (proc.stderr or proc.stdout)[-3000:]
                print(f"--- {name} failed (exit {proc.returncode}):\n{tail}", file=sys.stderr)
                results[name] = {"error": tail.strip().splitlines()[-1] if tail.strip() else f"exit {proc.returncode}"}
            else:
                results[name] = json.loads(lines[-1][len("RESULT "):])
                log.info("%s: %s", name, results[name])
            losses = [ln for ln in proc.stderr.splitlines() if " loss " in ln]
            if name.startswith("qft:") and losses and "error" not in results[name]:
                first, last = (float(ln.split(" loss ")[1].split()[0]) for ln in (losses[0], losses[-1]))
                results[name] |= {"first_loss": first, "last_loss": last}
    text = table(results)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"\nGPU training check: {device}, {Path(args.model_dir).name} shape (random weights),"
          f" {args.steps} steps × {args.batch} questions, max length {args.max_length}\n{text}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device, "args": vars(args), "results": results,
                               "table": text}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
