"""Benchmark items with gold answers, from JSONL or Parquet: GSM8K (question, answer '… #### 42'), MATH (problem,
answer or a solution with \\boxed{}, level, subject/type), or any file with a question and an answer column.

  gold_answer(record, answer_field=None) -> str | None
  load_items(benchmark: EvalBenchmark, limit=None) -> [{"index", "question", "gold", "level", "subject"}]

Test: tests/evaluation/test_metrics.py (fields), tests/evaluation/test_eval.py (files).
"""

from __future__ import annotations

from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.mathcheck import extract_boxed, gsm8k_gold


def gold_answer(record: dict, answer_field: str | None = None) -> str | None:
    """The gold final answer of a record: `answer_field` (default 'answer'; GSM8K's '… #### 42' → '42'), else the
    last \\boxed{} of 'solution'. None when there is none."""
    answer = record.get(answer_field or "answer")
    if isinstance(answer, str) and "####" in answer:
        return gsm8k_gold(answer)
    if isinstance(answer, str) and answer.strip():
        return extract_boxed(answer) or answer.strip()
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        return str(answer)
    if answer_field is None:
        return extract_boxed(record.get("solution") or "")
    return None


def question_text(record: dict, question_field: str | None = None) -> str | None:
    """The stripped question of a record: `question_field`, else 'problem' (MATH) or 'question' (GSM8K); None when
    it is missing or blank."""
    text = record.get(question_field) if question_field else record.get("problem", record.get("question"))
    return text.strip() if isinstance(text, str) and text.strip() else None


def load_items(benchmark, limit: int | None = None) -> list[dict]:
    """The first `limit` items of `benchmark` (an EvalBenchmark) that have a question; an item without a gold
    answer is kept (it is graded wrong and counted in the report). ConfigError names the key and the fix."""
    from scalequest.train.data import read_records

    key = f"eval.benchmarks[{benchmark.name}].path"
    if not Path(benchmark.path).is_file():
        raise ConfigError(f"{key}: no file at '{benchmark.path}' — point it at a JSONL or Parquet file with question "
                          "and answer fields (GSM8K and MATH test sets are in ../shared/data), or set root=")
    items = []
    for rec in read_records(Path(benchmark.path), key):
        question = question_text(rec, benchmark.question_field) if isinstance(rec, dict) else None
        if question is None:
            continue
        items.append({"index": len(items), "question": question, "gold": gold_answer(rec, benchmark.answer_field),
                      "level": rec.get("level"), "subject": rec.get("subject", rec.get("type"))})
        if limit is not None and len(items) >= limit:
            break
    if not items:
        field = benchmark.question_field or "problem/question"
        raise ConfigError(f"{key}: '{benchmark.path}' has no item with a '{field}' text — set "
                          f"eval.benchmarks' question_field to the column that holds the questions")
    return items
