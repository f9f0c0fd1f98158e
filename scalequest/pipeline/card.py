"""The run folder's dataset card: README.md in Hugging Face dataset-card format, written at the end of every
execution from the run report and the config (and again by `scalequest card RUN_DIR`).

The YAML header holds license (`card.license`), task categories, language, size category, tags and `configs`,
which points the `train` split at the kept shards, so `datasets.load_dataset(RUN_DIR)` (or the Hub repo that
`scalequest publish` makes) loads the kept pairs. The body says what the method did with which models and
sampling, the funnel, duplicates and contamination per benchmark, the cost per kept pair, the plots
(`pipeline.plots`), how to load the data, and the full config with its hash.

Test: tests/pipeline/test_card.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import yaml

from scalequest.pipeline.storage import Folder, as_folder

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
KEPT_GLOB = "data/status=kept/*.parquet"
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))


def size_category(n: int) -> str:
    return next((label for limit, label in SIZES if n < limit), "n>100M")


def title(cfg) -> str:
    return cfg.card.pretty_name or f"ScaleQuest synthetic math ({cfg.name})"


def card_header(cfg, kept: int) -> dict:
    return {
        "license": cfg.card.license,
        "pretty_name": title(cfg),
        "task_categories": ["question-answering", "text-generation"],
        "language": ["en"],
        "size_categories": [size_category(kept)],
        "tags": ["math", "synthetic", "scalequest", *cfg.card.tags],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": KEPT_GLOB}]}],
    }


def card_text(cfg, report: dict, run_name: str, plots: dict[str, str]) -> str:
    """The README.md text for a run of `cfg` with `report` (summary.json) and `plots` (name → relative path)."""
    from scalequest.pipeline.cost import render_cost

    header = yaml.safe_dump(card_header(cfg, report["kept"]), sort_keys=False, allow_unicode=True)
    lines = [f"---\n{header}---", "", f"# {title(cfg)}", "",
             f"Math question–answer pairs synthesized from scratch with ScaleQuest "
             f"([arXiv 2410.18693](https://arxiv.org/abs/2410.18693)): **{report['kept']:,} kept pairs** of "
             f"{report['candidates']:,} candidates (run `{run_name}`, config hash `{report.get('config_hash')}`). "
             "The `train` split is the kept pairs; rejected candidates, each with its stage and reason, stay in "
             "`data/status=rejected/` of the run folder.", "", "## How it was made", ""]
    lines += _method(cfg)
    lines += ["", "## Funnel", "", "| stage | in | kept | rejected | reasons |", "|---|---|---|---|---|"]
    for f in report["funnel"]:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(f["reasons"].items())[:4]) or "—"
        lines.append(f"| {f['stage']} | {f['in']:,} | {f['kept']:,} | {f['rejected']:,} | {reasons} |")
    if "funnel" in plots:
        lines += ["", f"![funnel]({plots['funnel']})"]
    if bins := report.get("difficulty_bins"):
        lines += ["", f"Difficulty bins (scores cut at {bins['edges']}), before and after the difficulty stage:", "",
                  "| bin | before | after |", "|---|---|---|"]
        lines += [f"| {n} | {a:,} | {b:,} |" for n, a, b in zip(bins["names"], bins["before"], bins["after"])]
    lines += ["", "## Duplicates and contamination", ""]
    dup = report.get("duplicates", {})
    lines.append(f"- Exact duplicates removed (normalized text): {dup.get('exact', 0):,}; near-duplicates removed "
                 f"(MinHash LSH, estimated Jaccard ≥ {cfg.near_dup.threshold} over character "
                 f"{cfg.near_dup.shingle}-grams): {dup.get('near', 0):,}"
                 + ("" if cfg.near_dup.enabled else " (near-dup was off)") + ".")
    contamination = report.get("contamination") or {}
    if contamination:
        files = {b.label: cfg.written("decontam", "benchmarks", i, "path")
                 for i, b in enumerate(cfg.decontam.benchmarks)}
        lines += [f"- Benchmark decontamination: a question sharing one word {cfg.decontam.ngram}-gram with a "
                  "benchmark item, or equal to one after normalization, was rejected:", "",
                  "| benchmark | file | rejected |", "|---|---|---|"]
        lines += [f"| {name} | `{files.get(name, '?')}` | {n:,} |" for name, n in contamination.items()]
    else:
        lines.append("- Benchmark decontamination: **not run** (no `decontam.benchmarks` listed).")
    if "cost" in report:
        lines += ["", "## Cost", "", *[f"- {line}" for line in render_cost(report["cost"])]]
    rest = {k: v for k, v in plots.items() if k != "funnel"}
    if rest:
        lines += ["", "## Plots", ""] + [f"![{name}]({path})" for name, path in rest.items()]
    lines += ["", "## Loading", "", "```python", "from datasets import load_dataset", "",
              'pairs = load_dataset("path/to/this/folder-or-hub-repo", split="train")  # the kept pairs',
              "print(pairs[0][\"question\"], pairs[0][\"response\"], pairs[0][\"final_answer\"])", "```", "",
              "Columns: `question`, `response` (the selected step-by-step answer), `final_answer` (its `\\boxed{}` "
              "content), `reward`, `agreement` (share of the solver's answers equal to it), `difficulty`, "
              "`generator` and the models and sampling that made the row; the run's full schema is "
              "`scalequest.schema.output_schema`.",
              "", "## Config", "", f"<details><summary>config.yaml (hash {report.get('config_hash')})</summary>",
              "", "```yaml", yaml.safe_dump(cfg.dump_written(), sort_keys=False).rstrip(), "```", "",
              "</details>", ""]
    return "\n".join(lines)


def _method(cfg) -> list[str]:
    gens = "; ".join(f"`{g.name}` = {cfg.written('models', g.model, 'path')} (share {g.share}, template "
                     f"{g.template}, sampling {json.dumps(g.sampling.model_dump())})" for g in cfg.generators)
    s, d, r, w = cfg.solvability, cfg.difficulty, cfg.responses, cfg.reward
    qt = [k for k in ("not_a_question", "multiple_choice", "yes_no", "proof", "multi_part")
          if getattr(cfg.question_type, k)] if cfg.question_type.enabled else []
    return [
        f"1. **Questions** from the generators' pre-query prefix: {gens}.",
        f"2. **Filters**: English (fastText, prose score ≥ {cfg.language.min_score}"
        + ("" if cfg.language.enabled else ", off") + "); question type ("
        + (", ".join(qt) or "off") + "); benchmark decontamination ("
        + (", ".join(b.label for b in cfg.decontam.benchmarks) if cfg.decontam.enabled and cfg.decontam.benchmarks
           else "off") + "); exact and near-duplicate removal; solvability judged by "
        + (f"{cfg.written('models', s.model, 'path')}" if s.enabled else "nobody (off)") + "; difficulty "
        + (f"scored by {cfg.written('difficulty', 'model_path')}, easiest {d.drop_easiest_share:.0%} dropped"
           if d.model_path else "not scored")
        + (f", sampled toward bin shares {d.target_shares}" if d.model_path and d.target_shares else "") + ".",
        f"3. **Responses**: {r.n} per question from {cfg.written('models', r.model, 'path')} (sampling "
        f"{json.dumps(r.sampling.model_dump())}), the best kept by "
        + (f"reward model {cfg.written('reward', 'model_path')}" if w.kind != "agreement"
           else "answer agreement (majority vote)")
        + (f"; a pair is rejected when fewer than {cfg.select.min_agreement:.0%} of the responses agree with its "
           "answer" if cfg.select.min_agreement is not None else "")
        + (f"; or when its reward is below {cfg.select.min_reward:g}" if cfg.select.min_reward is not None else "")
        + ".",
    ]


def write_card(run_dir: Folder | Path | str, cfg, report: dict) -> Folder:
    """Write run_dir/README.md and its plots. A plot that fails is logged and left out; the card is still
    written."""
    from scalequest.pipeline.plots import write_plots

    run_dir = as_folder(run_dir)
    try:
        plots = write_plots(run_dir, report)
    except Exception as exc:  # noqa: BLE001 - a card without plots beats no card at the end of a long run
        log.warning("plots not written (%s: %s); the card has none", type(exc).__name__, exc)
        plots = {}
    path = run_dir / CARD_FILE
    path.write_text(card_text(cfg, report, run_dir.name, plots))
    return path
