"""Question sources for training: GSM8K-style (`question`) and MATH-style (`problem`) rows from JSONL or Parquet
files, or Hugging Face dataset ids (`id` or `id:config`, train split), cleaned and de-duplicated.

    load_questions(["../shared/data/gsm8k/train.jsonl", "../shared/data/math/train.jsonl"])  # ~15K questions

Benchmark files are refused: a file whose name contains "test" is never used for training. Every dropped row is
counted by reason and logged; an empty result is an error, never a silent empty training set.

Test: `pytest tests/train/test_data.py`.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.mathcheck import normalize_question

log = logging.getLogger(__name__)

QUESTION_COLUMNS = ("question", "problem", "query")  # GSM8K, MATH, ScaleQuest samples
FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def load_questions(sources: list[str], max_questions: int | None = None, seed: int = 0) -> list[str]:
    """Stripped, exact-deduplicated (normalized text) question strings from `sources`, in source order.

    `max_questions` keeps a seeded random subset (so a small run mixes every source), still in source order.
    Raises ConfigError for a missing path, a benchmark ("test") file, a source without a question column, or
    when no usable question is left.
    """
    if not sources:
        raise ConfigError("train data: no sources given — list JSONL/Parquet paths or HF dataset ids")
    questions: list[str] = []
    seen: set[str] = set()
    for source in sources:
        raw = read_source(source)
        kept, dropped = clean_questions(raw, seen)
        questions += kept
        log.info("%s: %d rows, kept %d, dropped %s", source, len(raw), len(kept), dict(dropped) or "none")
    if not questions:
        raise ConfigError(f"train data: no usable questions in {sources} — every row was empty, non-text or a "
                          f"duplicate; check the files and their question/problem column")
    if max_questions is not None and len(questions) > max_questions:
        keep = set(random.Random(seed).sample(range(len(questions)), max_questions))
        questions = [q for i, q in enumerate(questions) if i in keep]
        log.info("kept a seeded random %d of the questions (max_questions)", max_questions)
    log.info("training questions: %d from %d source(s)", len(questions), len(sources))
    return questions


def clean_questions(values: list, seen: set[str]) -> tuple[list[str], Counter]:
    """(kept stripped strings, drop counts by reason); `seen` holds normalized texts across sources."""
    kept, dropped = [], Counter()
    for value in values:
        if not isinstance(value, str):
            dropped["non-text"] += 1
            continue
        text = value.strip()
        if not text:
            dropped["empty"] += 1
            continue
        if not first_seen(text, seen):
            dropped["duplicate"] += 1
            continue
        kept.append(text)
    return kept, dropped


def first_seen(text: str, seen: set[str]) -> bool:
    """True the first time a question's normalized text shows up in `seen` (which it then joins)."""
    key = normalize_question(text)
    if key in seen:
        return False
    seen.add(key)
    return True


def read_source(source: str) -> list:
    """The raw question values of one source (a file path or an HF dataset id)."""
    path = Path(source).expanduser()
    if "test" in path.name.lower():
        raise ConfigError(f"train data: '{source}' looks like a benchmark test split (file name contains 'test') — "
                          f"benchmarks are for evaluation and decontamination only; use the train split")
    if path.is_file():
        rows = read_records(path)
        column = _question_column(set().union(*rows) if rows else set(), source)
        return [row.get(column) for row in rows]
    if path.exists():
        raise ConfigError(f"train data: '{source}' is not a file — pass a .jsonl or .parquet file")
    if not path.suffix and not source.startswith((".", "/", "~")):
        return _read_hf_dataset(source)
    raise ConfigError(f"train data: no file at '{source}' — fix the path (expected {', '.join(FILE_SUFFIXES)}) "
                      f"or give a Hugging Face dataset id")


def _question_column(columns, source) -> str:
    for name in QUESTION_COLUMNS:
        if name in columns:
            return name
    raise ConfigError(f"train data: '{source}' has no question column (looked for {list(QUESTION_COLUMNS)}, found "
                      f"{sorted(columns)[:10]}) — use GSM8K-style 'question' or MATH-style 'problem' rows")


def read_records(path: Path, what: str = "train data") -> list[dict]:
    """The rows of a Parquet file, or the JSON objects of a JSONL file (other lines skipped with a warning).

    Raises ConfigError (starting with `what`, the config key) for a file without a single row.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        if not rows:
            raise ConfigError(f"{what}: '{path}' has no rows — an empty file cannot be used")
        return rows
    rows, bad = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
    if bad:
        log.warning("%s: skipped %d line(s) that are not JSON objects", path, bad)
    if not rows:
        raise ConfigError(f"{what}: '{path}' has no JSON object rows — expected one JSON object per line")
    return rows


def _read_hf_dataset(source: str) -> list:
    """`id` or `id:config` (e.g. `openai/gsm8k:main`), train split."""
    import datasets

    name, _, config = source.partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split="train")
    except Exception as exc:  # offline, unknown id, no train split: all surface as different types
        raise ConfigError(f"train data: cannot load Hugging Face dataset '{source}' (train split): "
                          f"{type(exc).__name__}: {exc} — check the id (id:config for datasets with configs, "
                          f"e.g. openai/gsm8k:main) and the network, or pass a local file") from exc
    return ds[_question_column(ds.column_names, source)]
