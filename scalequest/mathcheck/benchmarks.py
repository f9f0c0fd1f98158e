"""Benchmark test sets as a contamination index: the hashed word n-grams and the exact normalized text of every
item, built once per process. A question is contaminated when its normalized text equals an item's, or when it
shares one word n-gram (13 by default, as in GPT-3's and NeMo Curator's task decontamination) with an item.

    benchmarks = load_benchmarks(cfg.decontam.benchmarks)        # {"gsm8k_test": [...], "math_test": [...]}
    index = BenchmarkIndex(benchmarks, n=13)
    index.match("Janet’s ducks lay 16 eggs per day. ...")       # Match(benchmark="gsm8k_test", item=0, ...)

Words are the `\\w+` runs of `normalize_question(text)` (NFKC, casefold): punctuation and LaTeX symbols drop out,
numbers and LaTeX command names stay; `[asy]` figure code is left out (MATH's figures share long boilerplate:
"pen dps linewidth 0 7 fontsize 10 defaultpen dps …" matched 13 train questions to test items it has nothing to
do with). An item shorter than n words has no n-gram; only its exact text is checked.
N-grams are kept as Python `hash()` values in a dict (n-gram → the first item that has it): the hash is salted per
process, so an index answers only in the process that built it (each stage actor builds its own).

Test: `pytest tests/stages/test_decontam.py`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.mathcheck.text import normalize_question, question_hash

WORD = re.compile(r"\w+")
ASY = re.compile(r"\[asy\].*?\[/asy\]", re.DOTALL)  # figure code: shared boilerplate, not the question
BENCHMARK_SUFFIXES = (".jsonl", ".json", ".parquet")


def words(text: str) -> list[str]:
    """The words n-grams are made of: `\\w+` runs of the normalized text, Asymptote figure code left out."""
    return WORD.findall(normalize_question(ASY.sub(" ", text)))


def ngram_hashes(text: str, n: int) -> set[int]:
    """The hashes of `text`'s word n-grams (empty when it has fewer than n words)."""
    ws = words(text)
    return {hash(" ".join(ws[i:i + n])) for i in range(len(ws) - n + 1)}


@dataclass(frozen=True)
class Match:
    """What a question matched: benchmark name, the item's row index in its file, the kind ("exact" or
    "13-gram"), and for n-gram matches the n-grams shared with that item out of the question's."""

    benchmark: str
    item: int
    kind: str
    shared: int = 0
    total: int = 0

    def reason(self) -> str:
        detail = "exact text" if self.kind == "exact" else f"{self.shared} of {self.total} {self.kind}s shared"
        return f"contaminated: {self.benchmark} item {self.item} ({detail})"


class BenchmarkIndex:
    """`benchmarks`: name → item texts (None for a row without text; its index still counts)."""

    def __init__(self, benchmarks: dict[str, list], n: int = 13):
        self.names = list(benchmarks)
        self.n = n
        self.exact: dict[str, int] = {}
        self.grams: dict[int, int] = {}
        for b, texts in enumerate(benchmarks.values()):
            for i, text in enumerate(texts):
                if not isinstance(text, str) or not text.strip():
                    continue
                key = b << 32 | i
                self.exact.setdefault(question_hash(text), key)
                for g in ngram_hashes(text, n):
                    self.grams.setdefault(g, key)

    def __len__(self) -> int:
        return len(self.grams)

    def match(self, text: str) -> Match | None:
        """The benchmark item `text` copies (exact first, else the item sharing the most n-grams), or None."""
        if (key := self.exact.get(question_hash(text))) is not None:
            return Match(self.names[key >> 32], key & 0xFFFFFFFF, "exact")
        grams = ngram_hashes(text, self.n)
        hits = Counter(self.grams[g] for g in grams if g in self.grams)
        if not hits:
            return None
        key, shared = hits.most_common(1)[0]
        return Match(self.names[key >> 32], key & 0xFFFFFFFF, f"{self.n}-gram", shared, len(grams))


def load_benchmarks(specs) -> dict[str, list]:
    """Name → item texts of each `decontam.benchmarks` entry (a BenchmarkFile), read from JSONL or Parquet.

    Raises ConfigError naming the key and the path for a missing file, another format, an empty file, a missing
    text field, or a field without a single text.
    """
    from scalequest.train.data import read_records

    out = {}
    for i, spec in enumerate(specs):
        key = f"decontam.benchmarks[{i}]"
        path = Path(spec.path).expanduser()
        if not path.is_file():
            raise ConfigError(f"{key}.path: no file at '{spec.path}' (from {Path.cwd()}) — fix the path (relative "
                              f"paths resolve against `root`: set root= to the folder that holds them, e.g. in a "
                              f"`ray job submit` job), or remove the entry to run without this benchmark")
        if path.suffix.lower() not in BENCHMARK_SUFFIXES:
            raise ConfigError(f"{key}.path: '{spec.path}' is not {', '.join(BENCHMARK_SUFFIXES)} — convert it to "
                              f"JSONL (one JSON object per line) or Parquet")
        rows = read_records(path, what=f"{key}.path")
        if not any(spec.field in row for row in rows[:100]):
            raise ConfigError(f"{key}.field: '{spec.field}' is not a field of '{spec.path}' (its fields: "
                              f"{sorted(rows[0])[:10]}) — set field to the column holding the question text")
        texts = [row.get(spec.field) for row in rows]
        if not any(isinstance(t, str) and t.strip() for t in texts):
            raise ConfigError(f"{key}: '{spec.path}' has no text in field '{spec.field}' — an empty benchmark "
                              f"checks nothing")
        out[spec.label] = texts
    return out
