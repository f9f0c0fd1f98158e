"""Labels for the difficulty scorer (0 = easy, 1 = hard): MATH's level, or the solver's fail rate over k sampled
answers checked against the gold answer with math-verify.

  read_problems(paths) -> (rows {question, gold, level, source}, skipped counts)   GSM8K / MATH, JSONL or Parquet
  math_level_labels(rows) -> (labelled rows, dropped count)
  fail_rate_labels(questions, golds, engine, formatter, k, sampling) -> fail rates
  load_labelled(cfg) -> (labelled rows, stats)                                      per train.difficulty.label_source

Test: `pytest tests/train/test_difficulty.py`.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from pathlib import Path

from scalequest.engines.base import Sampling
from scalequest.errors import ConfigError
from scalequest.evaluation.items import gold_answer, question_text
from scalequest.train.data import first_seen, read_records

log = logging.getLogger(__name__)

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
_LEVEL_RE = re.compile(r"^\s*(?:level\s*)?([1-5])\s*$", re.IGNORECASE)
_CHUNK = 64  # questions per engine request when labelling


def level_label(level) -> float | None:
    """MATH 'Level 1'..'Level 5' (or 1..5) → 0.0..1.0; anything else (e.g. 'Level ?') → None."""
    if isinstance(level, bool) or level is None:
        return None
    match = _LEVEL_RE.match(str(level))
    return (int(match.group(1)) - 1) / 4 if match else None


def math_level_labels(rows: list[dict]) -> tuple[list[dict], int]:
    """Rows with a known MATH level, each with `label` = level mapped to 0..1; and how many were dropped."""
    out = [{**r, "label": lab} for r in rows if (lab := level_label(r.get("level"))) is not None]
    return out, len(rows) - len(out)


def fail_rate_labels(questions, golds, engine, formatter, k: int, sampling: Sampling,
                     instruction: str = DEFAULT_INSTRUCTION, seeds=None) -> list[float | None]:
    """Per question, 1 − (answers among k samples equivalent to the gold answer) / k; None where there is no gold.
    Sampled and graded by the evaluation's machinery (`evaluation.solve`, `evaluation.metrics.grade`): a sample
    without a \\boxed{} answer, or whose generation failed, counts as wrong."""
    from scalequest.evaluation.metrics import grade
    from scalequest.evaluation.solve import solve

    questions, golds = list(questions), list(golds)
    rates: list[float | None] = [None] * len(questions)
    rows = [i for i, g in enumerate(golds) if isinstance(g, str) and g.strip()]

    def progress(done, total):
        log.info("fail-rate labels: %d/%d questions", done, total)

    texts = solve([questions[i] for i in rows], engine, formatter, k, sampling, instruction,
                  None if seeds is None else [seeds[i] for i in rows], _CHUNK, progress)
    for i, answers in zip(rows, texts):
        rates[i] = 1.0 - sum(grade(answers, golds[i])) / k
    return rates


def read_problems(paths, *, benchmark: bool = False) -> tuple[list[dict], Counter]:
    """GSM8K rows (question, answer '... #### n') and MATH rows (problem, answer, level) from JSONL/Parquet files,
    de-duplicated by normalized question. Returns (rows, counts of skipped rows by reason).

    Training data (`benchmark=False`) refuses files named like a test split, as QFT's data loader does."""
    rows, skipped, seen = [], Counter(), set()
    for path in paths:
        if not benchmark and "test" in Path(path).name.lower():
            raise ConfigError(f"train.difficulty.data: '{path}' looks like a benchmark test split — benchmarks are "
                              "for evaluation only (train.difficulty.eval_data); use the train split")
        if not Path(path).is_file():
            raise ConfigError(f"train.difficulty.data: no file at '{path}' — pass GSM8K/MATH JSONL or Parquet paths")
        for rec in read_records(Path(path)):
            row = _problem(rec, str(path))
            if row is None:
                skipped["no question text"] += 1
            elif not first_seen(row["question"], seen):
                skipped["duplicate question"] += 1
            else:
                rows.append(row)
    return rows, skipped


def _problem(rec, source: str) -> dict | None:
    if not isinstance(rec, dict):
        return None
    text = question_text(rec)
    if text is None:
        return None
    return {"question": text, "gold": gold_answer(rec), "level": rec.get("level"), "source": source}


def load_labelled(cfg) -> tuple[list[dict], dict]:
    """Labelled training rows for `cfg.train.difficulty` (root config: the solver is a key of `models`), shuffled
    with the run seed. Raises ConfigError instead of returning an empty set."""
    d = cfg.train.difficulty
    rows, skipped = read_problems(d.data)
    random.Random(cfg.seed).shuffle(rows)
    stats = {"read": len(rows) + sum(skipped.values()), "skipped": dict(skipped), "label_source": d.label_source}
    if d.label_source == "math_level":
        rows, stats["dropped_no_level"] = math_level_labels(rows)
        rows = rows[: d.max_questions]
    else:
        rows = _fail_rate_rows(cfg, rows, stats)
    stats["labelled"] = len(rows)
    if not rows:
        raise ConfigError(
            f"train.difficulty: no labelled questions from {d.data} with label_source '{d.label_source}' ({stats}) "
            "— math_level needs MATH-style rows with a 'level' field; fail_rate needs gold answers")
    log.info("difficulty labels: %s", stats)
    return rows, stats


def _fail_rate_rows(cfg, rows: list[dict], stats: dict) -> list[dict]:
    from scalequest.engines.chat import ChatFormatter
    from scalequest.pipeline.engine_pool import EngineSet
    from scalequest.stages.generate_questions import row_seed

    d = cfg.train.difficulty
    if d.solver not in cfg.models:
        raise ConfigError(f"train.difficulty.solver: '{d.solver}' is not a key of `models` (known: "
                          f"{sorted(cfg.models)}) — name the solver model for fail-rate labels")
    with_gold = [r for r in rows if r["gold"]]
    stats["dropped_no_gold"] = len(rows) - len(with_gold)
    rows = with_gold[: d.max_questions]
    model = cfg.models[d.solver]
    with EngineSet(cfg.ray) as engines:
        rates = fail_rate_labels([r["question"] for r in rows], [r["gold"] for r in rows], engines.get(model, d.solver),
                                 ChatFormatter(model.path, model.trust_remote_code), d.samples_per_question,
                                 Sampling.from_config(d.solver_sampling), cfg.responses.instruction,
                                 [row_seed(cfg.seed, i, "difficulty") for i in range(len(rows))])
    return [{**r, "label": rate} for r, rate in zip(rows, rates)]
