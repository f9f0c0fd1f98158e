"""Benchmark decontamination: reject a question that equals a benchmark test item (normalized text) or shares a
word n-gram with one (`decontam.ngram`, 13 by default). The reason names the benchmark and the item's row index:
"contaminated: gsm8k_test item 17 (9 of 41 13-grams shared)".

  in: question    out: (a reject for contaminated rows)
"""

from __future__ import annotations

from scalequest.mathcheck.benchmarks import BenchmarkIndex
from scalequest.stages.base import Rejects, column, passthrough, require

STAGE = "decontam"


class DropContaminated:
    """`cfg`: DecontamConfig; `benchmarks`: name → item texts (`load_benchmarks`), indexed once per instance."""

    def __init__(self, cfg, benchmarks: dict[str, list]):
        self.index = BenchmarkIndex(benchmarks, cfg.ngram) if cfg.enabled else None

    def __call__(self, batch: dict) -> dict:
        n = require("DropContaminated", batch, ["question"])
        questions = column(batch, "question")
        rejects = Rejects(batch, n)
        if self.index is not None:
            for i in rejects.kept():
                if questions[i] and (match := self.index.match(questions[i])):
                    rejects.reject(i, STAGE, match.reason())
        out = passthrough(batch)
        out.update(**rejects.columns())
        return out
