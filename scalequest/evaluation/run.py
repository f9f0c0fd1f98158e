"""`scalequest eval --config C --model PATH_OR_ID [--benchmarks gsm8k,math] [--limit N] [--samples k]`: sample k
answers per benchmark item from the model (the pipeline's vLLM engine actors, `engine_pool.EngineSet`, with the
engine settings of the config's solver model: its replicas split the questions), grade them with math-verify and
write an eval folder:

  <eval.output_dir>/<model name>-<UTC timestamp>/
    results.json        per benchmark: pass@1 (and pass@k, majority@k) with 95% intervals, per MATH level and
                        subject; the model (as given and resolved), the eval settings, the config hash, timings
    results.md          the same as readable tables (also printed)
    samples/<name>.jsonl  per item: question, gold, the k answers, the extracted answers, which were right

Test: tests/evaluation/test_eval.py (tiny random model).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.evaluation.items import load_items
from scalequest.evaluation.metrics import Z95, breakdown, summarize
from scalequest.pipeline.storage import Folder

log = logging.getLogger(__name__)


def pick_benchmarks(cfg, names: list[str] | None):
    """The configured benchmarks named in `names` (all when None), in that order; ConfigError for an unknown one."""
    known = {b.name: b for b in cfg.eval.benchmarks}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise ConfigError(f"--benchmarks: {unknown} are not in eval.benchmarks (known: {sorted(known)}) — pick "
                          "among them or add an entry (name, path, question_field, answer_field) to the config")
    return [known[n] for n in names] if names else list(known.values())


def eval_model(cfg, model: str):
    """The ModelConfig to evaluate: the engine settings of eval.model (default: the solver's) with path `model`
    (a local folder, made absolute, or a hub id); checked before any engine starts."""
    from scalequest.runtime import check_model_path

    key = cfg.eval.model or cfg.responses.model
    if key not in cfg.models:
        raise ConfigError(f"eval.model: '{key}' is not a key of `models` (known: {sorted(cfg.models)})")
    local = Path(model).expanduser()
    path = str(local.resolve()) if local.exists() else model
    check_model_path("--model", path)
    return cfg.models[key].model_copy(update={"path": path})


def run_eval(cfg, model: str, benchmarks: list[str] | None = None) -> tuple[Folder, dict]:
    """Evaluate `model` on the chosen benchmarks with `cfg.eval` (limit, samples, sampling, instruction); write the
    eval folder and return it with the results dict. The engine is the pipeline's engine actor, on a Ray started
    or joined here (`engine_pool.EngineSet`)."""
    from scalequest.engines.base import Sampling
    from scalequest.pipeline.engine_pool import EngineSet
    from scalequest.stages.generate_questions import row_seed

    e = cfg.eval
    chosen = pick_benchmarks(cfg, benchmarks)
    model_cfg = eval_model(cfg, model)
    items = {b.name: load_items(b, e.limit) for b in chosen}  # every file is read before the engine loads
    instruction = e.instruction if e.instruction is not None else cfg.responses.instruction
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = Folder(e.output_dir) / f"{Path(model_cfg.path.rstrip('/')).name}-{stamp}"
    results = {"model": {"as_given": model, "path": model_cfg.path, "settings_from": e.model or cfg.responses.model,
                         "dtype": model_cfg.dtype, "max_model_len": model_cfg.max_model_len},
               "eval": {**e.model_dump(exclude={"benchmarks", "output_dir"}), "instruction": instruction},
               "config_hash": cfg.config_hash(), "created_utc": stamp, "benchmarks": {}}
    t0 = time.perf_counter()
    with EngineSet(cfg.ray) as engines:
        engine = engines.get(model_cfg, e.model or cfg.responses.model)
        load_s = time.perf_counter() - t0
        stage = dict(engine=engine, model_path=model_cfg.path, trust_remote_code=model_cfg.trust_remote_code,
                     k=e.samples, sampling=Sampling.from_config(e.sampling), instruction=instruction,
                     force_answer=e.force_answer)
        for b in chosen:
            rows, started = items[b.name], time.perf_counter()
            seeds = [row_seed(cfg.seed, r["index"], f"eval:{b.name}") for r in rows]
            for r, graded in zip(rows, solve_stream(rows, seeds, stage, e, b.name)):
                r.update({k: graded[k] for k in ("answers", "extracted", "correct", "majority")})
            results["benchmarks"][b.name] = {
                "file": cfg.written("eval", "benchmarks", cfg.eval.benchmarks.index(b), "path"),
                **summarize(rows, e.samples),
                "no_gold": sum(1 for r in rows if not r["gold"]),
                "no_boxed_answer": sum(x is None for r in rows for x in r["extracted"]) / (len(rows) * e.samples),
                "by_level": breakdown(rows, "level", e.samples),
                "by_subject": breakdown(rows, "subject", e.samples),
                "wall_s": round(time.perf_counter() - started, 1),
            }
            (folder / "samples" / f"{b.name}.jsonl").write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    results["engine_load_s"] = round(load_s, 1)
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    (folder / "results.md").write_text(render(results) + "\n")
    return folder, results


def solve_stream(rows: list[dict], seeds: list[int], stage: dict, e, name: str) -> list[dict]:
    """`SolveAndGrade(**stage)` over `rows` as a Ray Data stream: `eval.concurrency` actors, each with a batch of
    `eval.batch_size` questions in flight to the engine while the others grade theirs. Returns the graded rows in
    the order of `rows`; logs progress as batches finish."""
    import ray.data

    from scalequest.evaluation.solve import SolveAndGrade
    from scalequest.pipeline.build import actor_pool
    from scalequest.pipeline.plan import CLIENT_CPUS, STAGE_MEMORY
    from scalequest.stages.base import to_py

    items = [{"index": r["index"], "question": r["question"], "gold": r["gold"] or "", "seed": s}
             for r, s in zip(rows, seeds)]
    ds = ray.data.from_items(items).map_batches(
        SolveAndGrade, fn_constructor_kwargs=stage, batch_size=e.batch_size, compute=actor_pool(e.concurrency, None, 1),
        num_cpus=CLIENT_CPUS, memory=STAGE_MEMORY, batch_format="numpy")
    graded: dict[int, dict] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        columns = {k: to_py(v) for k, v in batch.items()}
        for i, index in enumerate(columns["index"]):
            graded[index] = {k: columns[k][i] for k in columns}
        log.info("eval %s: %d/%d questions", name, len(graded), len(rows))
    return [graded[r["index"]] for r in rows]


def pct(x: dict) -> str:
    """'12.0% ± 6.4 [5.6, 18.4]' from an `interval` dict."""
    if x["value"] is None:
        return "–"
    return f"{100 * x['value']:.1f}% ± {100 * Z95 * x['se']:.1f} [{100 * x['low']:.1f}, {100 * x['high']:.1f}]"


def render(results: dict) -> str:
    """Markdown tables: one row per benchmark, then per MATH level and subject where the items have them."""
    m = results["model"]
    lines = [f"# Evaluation of {m['as_given']}", "", f"samples per question: {results['eval']['samples']}, "
             f"sampling {json.dumps(results['eval']['sampling'])}"
             + ("; answers without \\boxed{} were continued with the answer cue (eval.force_answer)"
                if results["eval"]["force_answer"] else "")
             + "; 95% intervals (1.96 standard errors over questions)", ""]
    metrics = [k for k in next(iter(results["benchmarks"].values())) if "@" in k]
    lines += ["| benchmark | questions | " + " | ".join(metrics) + " | no \\boxed{} |",
              "|---|---:|" + "---|" * len(metrics) + "---:|"]
    for name, b in results["benchmarks"].items():
        lines.append(f"| {name} | {b['questions']} | " + " | ".join(pct(b[k]) for k in metrics)
                     + f" | {100 * b['no_boxed_answer']:.0f}% |")
    for name, b in results["benchmarks"].items():
        for key, title in (("by_level", "level"), ("by_subject", "subject")):
            if b[key]:
                lines += ["", f"{name} by {title}:", "", f"| {title} | questions | pass@1 |", "|---|---:|---|"]
                lines += [f"| {v} | {s['questions']} | {pct(s['pass@1'])} |" for v, s in b[key].items()]
    return "\n".join(lines)
