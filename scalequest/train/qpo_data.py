"""QPO preference data: (a) sample questions from the QFT model with the pipeline's generation stage, (b) rewrite
each with the optimizer LLM (`rewrite`), (c) pair them — chosen = rewrite, rejected = original, prompt = the
pre-query prefix — dropping bad rewrites with a counted reason, and write Parquet.

  sample_questions(engine, prompt, stops, sampling, num, seed) -> rows {id, seed, prompt, question, reject_reason}
  rewrite_rows(rows, optimizer, seed, difficulty_share) -> rows + {mode, optimizer_output, optimizer_error, ...}
  build_pairs(rows, judge=None) -> (pairs, drops)          drops: reason -> count, every reason listed
  split_holdout(pairs, share, seed) -> pairs with split 'train' | 'holdout'
  write_qpo_data(out_dir, rows, pairs, stats) -> pairs.parquet (+ pairs.drops.json, rewrites.parquet)

Test: `pytest tests/train/test_qpo.py`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from scalequest.mathcheck import normalize_question
from scalequest.prompts import rewrite_prompt
from scalequest.stages.generate_questions import GenerateQuestions, row_seed
from scalequest.train.rewrite import choose_mode, parse_rewrite

log = logging.getLogger(__name__)

FAILED, EMPTY, UNPARSEABLE, IDENTICAL = ("optimizer call failed", "rewrite empty", "rewrite unparseable",
                                         "rewrite identical")
UNSOLVABLE, JUDGE_FAILED = "rewrite judged unsolvable", "solvability judge failed"
DROP_REASONS = (FAILED, EMPTY, UNPARSEABLE, IDENTICAL, UNSOLVABLE, JUDGE_FAILED)
PAIR_COLUMNS = ("id", "prompt", "chosen", "rejected", "mode", "split")
_SAMPLE_CHUNK = 256


def sample_questions(engine, prompt: str, stops, sampling_cfg, num: int, seed: int) -> list[dict]:
    """`num` questions from the QFT model's pre-query `prompt` via `GenerateQuestions` (seeded per row).
    Rows the stage rejects (no end-of-turn, empty) keep its `reject_reason`."""
    stage = GenerateQuestions({"qft": engine}, {"qft": (prompt, list(stops))}, {"qft": sampling_cfg})
    rows = []
    for start in range(0, num, _SAMPLE_CHUNK):
        ids = list(range(start, min(num, start + _SAMPLE_CHUNK)))
        seeds = [row_seed(seed, i, "qpo-sample") for i in ids]
        out = stage({"id": ids, "generator": ["qft"] * len(ids), "seed": seeds})
        rows += [{"id": i, "seed": s, "prompt": prompt, "question": q, "reject_reason": r}
                 for i, s, q, r in zip(ids, seeds, out["question"], out["reject_reason"])]
        log.info("QPO sampling: %d/%d questions", len(rows), num)
    return rows


def rewrite_rows(rows: list[dict], optimizer, seed: int, difficulty_share: float) -> list[dict]:
    """Ask the optimizer to rewrite every row's question (mode chosen per row); failures become row values."""
    modes = [choose_mode(seed, r["id"], difficulty_share) for r in rows]
    replies = optimizer.complete([rewrite_prompt(m, r["question"]) for m, r in zip(modes, rows)],
                                 [row_seed(seed, r["id"], "qpo-rewrite") for r in rows])
    return [{**r, "mode": m, "optimizer": optimizer.name, "optimizer_output": rep.text,
             "optimizer_error": rep.error, "optimizer_truncated": rep.truncated}
            for r, m, rep in zip(rows, modes, replies)]


def label_rows(rows: list[dict], judge=None) -> list[dict]:
    """Each row plus `rewrite` (parsed) and `drop_reason` (None = becomes a pair). `judge` is a
    `JudgeSolvability` stage run on the surviving rewrites (None = no solvability check)."""
    out = []
    for r in rows:
        raw = r.get("optimizer_output")
        rewrite = parse_rewrite(raw) if r.get("optimizer_error") is None else None
        if r.get("optimizer_error") is not None:
            reason = FAILED
        elif not isinstance(raw, str) or not raw.strip():
            reason = EMPTY
        elif rewrite is None or (r.get("optimizer_truncated") and _ends_with(raw, rewrite)):
            reason = UNPARSEABLE  # no marker line, or max_tokens cut the output inside the rewrite
        elif not rewrite:
            reason = EMPTY
        elif normalize_question(rewrite) == normalize_question(r["question"]):
            reason = IDENTICAL
        else:
            reason = None
        out.append({**r, "rewrite": rewrite, "drop_reason": reason})
    if judge is not None:
        _judge(out, judge)
    return out


def _ends_with(raw: str, rewrite: str) -> bool:
    return bool(rewrite) and raw.rstrip().rstrip("\"”'`*_>").rstrip().endswith(rewrite)


def _judge(rows: list[dict], judge) -> None:
    todo = [r for r in rows if r["drop_reason"] is None]
    if not todo:
        return
    verdicts = judge({"question": [r["rewrite"] for r in todo], "seed": [r["seed"] for r in todo]})
    for r, reason, judgement in zip(todo, verdicts["reject_reason"], verdicts["solvability_judgement"]):
        r["judgement"] = judgement
        if reason == "judged unsolvable":
            r["drop_reason"] = UNSOLVABLE
        elif reason is not None:
            r["drop_reason"], r["judge_error"] = JUDGE_FAILED, reason


def pairs_and_drops(labelled: list[dict]) -> tuple[list[dict], dict]:
    """Pairs from `label_rows` output, and drop counts by reason (every reason present, zeros included)."""
    drops = dict.fromkeys(DROP_REASONS, 0)
    pairs = []
    for r in labelled:
        if r["drop_reason"] is not None:
            drops[r["drop_reason"]] = drops.get(r["drop_reason"], 0) + 1
        else:
            pairs.append({"id": r["id"], "prompt": r["prompt"], "chosen": r["rewrite"], "rejected": r["question"],
                          "mode": r["mode"]})
    return pairs, drops


def build_pairs(rows: list[dict], judge=None) -> tuple[list[dict], dict]:
    """(pairs {id, prompt, chosen=rewrite, rejected=original, mode}, drop counts by reason) from rewritten rows."""
    return pairs_and_drops(label_rows(rows, judge))


def split_holdout(pairs: list[dict], share: float, seed: int) -> list[dict]:
    """Mark round(share × n) pairs 'holdout' (chosen by a hash of (seed, id), so reruns agree), the rest 'train'."""
    order = sorted(pairs, key=lambda p: row_seed(seed, p["id"], "qpo-holdout"))
    held = {p["id"] for p in order[: round(share * len(pairs))]}
    return [{**p, "split": "holdout" if p["id"] in held else "train"} for p in pairs]


def write_qpo_data(out_dir: Path, rows: list[dict], pairs: list[dict], stats: dict) -> Path:
    """Write rewrites.parquet (every sampled row, with its drop reason or error), pairs.parquet and
    pairs.drops.json (counts per drop reason and split sizes); returns the pairs path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if rows:
        pq.write_table(pa.Table.from_pylist(rows), out_dir / "rewrites.parquet")
    schema = pa.schema([(c, pa.int64() if c == "id" else pa.string()) for c in PAIR_COLUMNS])
    table = pa.Table.from_pylist([{c: p[c] for c in PAIR_COLUMNS} for p in pairs], schema=schema)
    path = out_dir / "pairs.parquet"
    pq.write_table(table, path)
    splits = {s: sum(p["split"] == s for p in pairs) for s in ("train", "holdout")}
    (out_dir / "pairs.drops.json").write_text(json.dumps({**stats, "pairs": len(pairs), **splits}, indent=2) + "\n")
    log.info("QPO pairs: %d (%s) -> %s; drops %s", len(pairs), splits, path, stats.get("drops"))
    return path


def read_pairs(path, split: str | None = None) -> list[dict]:
    """Pairs from a pairs.parquet, optionally one split."""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    return [r for r in rows if split is None or r.get("split") == split]
