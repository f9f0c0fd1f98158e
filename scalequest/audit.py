"""`scalequest audit FILE_OR_DIR`: the pipeline's dataset checks on any JSONL or Parquet dataset (ours or
someone else's), without generating anything — what a researcher runs before training on a dataset.

Each check looks at every row on its own (not as a funnel), with the config's settings (`--config`, default tiny):
  exact duplicates   normalized-text hash, the first copy counts as the original      (stages.dedup)
  near duplicates    MinHash LSH, near_dup.*, among rows that are not exact copies    (stages.near_dup)
  contamination      per benchmark in decontam.benchmarks: exact text or n-gram       (stages.decontam)
  question type      each question_type.* rule                                        (stages.question_type)
  boxed answers      share of responses with a \\boxed{} answer (when a response column is there)

Rows are read in batches of `BATCH` (a directory: every Parquet file under it, e.g. a run's data/ folder).
`--out FILE.jsonl` writes every flagged row: its row index, question and reasons.

Test: tests/test_audit.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.pipeline.report import contamination
from scalequest.stages.base import reason_kind

BATCH = 2048
QUESTION_FIELDS = ("question", "problem", "query", "prompt", "instruction")
RESPONSE_FIELDS = ("response", "solution", "output", "completion")


@dataclass
class AuditResult:
    rows: int = 0
    flagged: Counter = field(default_factory=Counter)  # check (the stage's name) → rows
    reasons: Counter = field(default_factory=Counter)  # (check, reason kind) → rows, as the run report counts
    responses: int = 0
    boxed: int = 0
    any_flag: int = 0
    fields: tuple[str, str | None] = ("question", None)


def audit(path: str | Path, cfg, question_field: str | None = None, response_field: str | None = None,
          out: str | Path | None = None) -> AuditResult:
    """Run every check over the rows of `path`; write flagged rows to `out` (JSONL) when given."""
    from scalequest.mathcheck.answers import extract_boxed
    from scalequest.mathcheck.benchmarks import load_benchmarks
    from scalequest.stages.decontam import DropContaminated
    from scalequest.stages.dedup import DropDuplicates
    from scalequest.stages.near_dup import DropNearDuplicates
    from scalequest.stages.question_type import FilterQuestionType

    benchmarks = load_benchmarks(cfg.decontam.benchmarks) if cfg.decontam.benchmarks else {}
    checks = {"dedup": DropDuplicates(),
              "near_dup": DropNearDuplicates(cfg.near_dup.model_copy(update={"enabled": True})),
              "decontam": DropContaminated(cfg.decontam.model_copy(update={"enabled": True}), benchmarks),
              "question_type": FilterQuestionType(cfg.question_type.model_copy(update={"enabled": True}))}
    result = AuditResult()
    sink = open(out, "w", encoding="utf-8") if out else None  # noqa: SIM115 - closed below
    try:
        for batch in read_batches(Path(path), question_field, response_field, result):
            n = len(batch["id"])
            reasons: list[list[str]] = [[] for _ in range(n)]
            exact = checks["dedup"](batch)["reject_reason"]
            near_in = {**batch, "reject_stage": ["dedup" if r else None for r in exact], "reject_reason": exact}
            near = checks["near_dup"](near_in)["reject_reason"]
            answers = {"dedup": exact, "near_dup": [None if e else r for e, r in zip(exact, near)]}
            if benchmarks:
                answers["decontam"] = checks["decontam"](batch)["reject_reason"]
            answers["question_type"] = checks["question_type"](batch)["reject_reason"]
            for check, column in answers.items():
                for i, reason in enumerate(column):
                    if reason:
                        reasons[i].append(reason)
                        result.flagged[check] += 1
                        result.reasons[(check, reason_kind(reason))] += 1
            for response in batch.get("response", ()):
                if isinstance(response, str):
                    result.responses += 1
                    result.boxed += extract_boxed(response) is not None
            result.any_flag += sum(1 for r in reasons if r)
            if sink:
                for i, rs in enumerate(reasons):
                    if rs:
                        sink.write(json.dumps({"row": batch["id"][i], "question": batch["question"][i],
                                               "reasons": rs}, ensure_ascii=False) + "\n")
    finally:
        if sink:
            sink.close()
    return result


def read_batches(path: Path, question_field, response_field, result: AuditResult) -> Iterator[dict]:
    """{"id": row indices, "question": [...], and "response" when there is one} per batch of BATCH rows."""
    if not path.exists():
        raise ConfigError(f"audit: no file or folder at '{path}' — pass a .jsonl or .parquet file, or a folder of "
                          f"Parquet files")
    start = 0
    for rows in _raw_batches(path):
        columns = set().union(*rows) if rows else set()
        if start == 0:
            q = question_field or next((c for c in QUESTION_FIELDS if c in columns), None)
            if q is None or q not in columns:
                raise ConfigError(f"audit: '{path}' has no question field {question_field or list(QUESTION_FIELDS)}"
                                  f" (fields: {sorted(columns)[:12]}) — name it with --field")
            r = response_field or next((c for c in RESPONSE_FIELDS if c in columns), None)
            result.fields = (q, r)
        q, r = result.fields
        batch = {"id": list(range(start, start + len(rows))),
                 "question": [row.get(q) if isinstance(row.get(q), str) else None for row in rows]}
        if r:
            batch["response"] = [row.get(r) for row in rows]
        start += len(rows)
        result.rows = start
        yield batch
    if start == 0:
        raise ConfigError(f"audit: '{path}' holds no rows")


def _raw_batches(path: Path) -> Iterator[list[dict]]:
    if path.is_dir() or path.suffix.lower() == ".parquet":
        import pyarrow.dataset as pads

        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        if not files:
            raise ConfigError(f"audit: no Parquet files under '{path}'")
        for batch in pads.dataset([str(f) for f in files], format="parquet").to_batches(batch_size=BATCH):
            yield batch.to_pylist()
        return
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise ConfigError(f"audit: '{path}' is not .jsonl or .parquet — convert it, or pass a folder of Parquet files")
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                rows.append(row if isinstance(row, dict) else {})
            if len(rows) == BATCH:
                yield rows
                rows = []
    if rows:
        yield rows


def render(result: AuditResult, path, cfg) -> str:
    """The audit as a readable table."""
    q, r = result.fields
    lines = [f"audit of {path}: {result.rows:,} rows (question field '{q}'"
             + (f", response field '{r}')" if r else ", no response field)"), "",
             f"{'check':<44}{'rows':>10}{'share':>9}"]

    def row(label: str, n: int) -> None:
        lines.append(f"{label:<44}{n:>10,}{n / max(result.rows, 1):>9.2%}")

    row("exact duplicates", result.flagged["dedup"])
    row(f"near duplicates (Jaccard ≥ {cfg.near_dup.threshold})", result.flagged["near_dup"])
    if cfg.decontam.benchmarks:
        per = contamination(result.reasons, [b.label for b in cfg.decontam.benchmarks])
        for name, n in per.items():
            row(f"contaminated: {name} ({cfg.decontam.ngram}-gram or exact)", n)
    else:
        lines.append("contaminated: not checked (no decontam.benchmarks in the config)")
    for (check, kind), n in sorted(result.reasons.items()):
        if check == "question_type":
            row(f"question type: {kind}", n)
    if r:
        lines.append(f"{'responses with a boxed answer':<44}{result.boxed:>10,}"
                     f"{result.boxed / max(result.responses, 1):>9.2%}  (of {result.responses:,} responses)")
    lines += ["", f"rows flagged by any check: {result.any_flag:,} of {result.rows:,}"]
    return "\n".join(lines)
