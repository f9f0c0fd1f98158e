"""The run report: the funnel per stage (in = kept + rejected, by reason), busy time per stage, tokens generated,
read back from the written Parquet so it describes what is on disk (a resumed run's earlier rows included).
The shards are scanned in record batches and only counts are kept, so the report never holds the rows. Written as
summary.json and summary.txt."""

from __future__ import annotations

import json
import re
from collections import Counter

from scalequest.pipeline.storage import Folder, as_folder
from scalequest.schema import FUNNEL_STAGES, KEPT, REJECT_REASON, REJECT_STAGE, TOKEN_COLUMNS
from scalequest.stages.base import reason_kind


def funnel(rows: list[dict], stages=FUNNEL_STAGES) -> list[dict]:
    """Per stage: in, kept, rejected and rejected by reason kind. `rows` carry reject_stage / reject_reason."""
    counts = Counter((r["reject_stage"], reason_kind(r["reject_reason"])) for r in rows if r["reject_reason"])
    return funnel_from_counts(len(rows), counts, stages)


def funnel_from_counts(total: int, rejects: Counter, stages=FUNNEL_STAGES) -> list[dict]:
    """`funnel` from the row count and a Counter of (reject_stage, reason kind) → rejected rows."""
    by_stage: dict[str, Counter] = {s: Counter() for s in stages}
    for (stage, kind), n in rejects.items():
        by_stage.setdefault(stage, Counter())[kind] += n
    out, remaining = [], total
    for stage, reasons in by_stage.items():
        rejected = sum(reasons.values())
        out.append(dict(stage=stage, **{"in": remaining}, kept=remaining - rejected, rejected=rejected,
                        reasons=dict(reasons.most_common())))
        remaining -= rejected
    return out


def scan_counts(data_dir: Folder, edges: list[float] | None = None):
    """(rows, kept, Counter of (reject_stage, reason kind), tokens by column, difficulty bins) over every shard,
    batch by batch. With bin `edges`, the bins are (before, after): scored questions per bin, all of them and
    those the difficulty stage kept (past the easiest-share drop and the bin sampling); else None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from scalequest.stages.difficulty import bin_counts

    rows = kept = 0
    rejects: Counter = Counter()
    tokens = dict.fromkeys(TOKEN_COLUMNS, 0)
    before, after = [0] * (len(edges or ()) + 1), [0] * (len(edges or ()) + 1)
    columns = [REJECT_STAGE, REJECT_REASON, "status", *TOKEN_COLUMNS, *(["difficulty"] if edges is not None else [])]
    for batch in as_folder(data_dir).dataset().to_batches(columns=columns):
        rows += batch.num_rows
        kept += pc.sum(pc.equal(batch["status"], KEPT)).as_py() or 0
        for col in TOKEN_COLUMNS:
            tokens[col] += pc.sum(batch[col]).as_py() or 0
        rejected = pa.Table.from_batches([batch]).filter(pc.is_valid(batch[REJECT_REASON]))
        grouped = rejected.group_by([REJECT_STAGE, REJECT_REASON]).aggregate([([], "count_all")])
        for stage, reason, n in zip(*(grouped[c].to_pylist() for c in (REJECT_STAGE, REJECT_REASON, "count_all"))):
            rejects[(stage, reason_kind(reason))] += n
        if edges is not None:
            scored = [(d, st) for d, st in zip(batch["difficulty"].to_pylist(), batch[REJECT_STAGE].to_pylist())
                      if d is not None]
            before = [a + b for a, b in zip(before, bin_counts([d for d, _ in scored], edges))]
            after = [a + b for a, b in zip(after, bin_counts([d for d, st in scored if st != "difficulty"], edges))]
    return rows, kept, rejects, tokens, ((before, after) if edges is not None else None)


def contamination(rejects: Counter, benchmarks: list[str]) -> dict[str, int]:
    """Rows the decontam stage rejected, per benchmark: every name in `benchmarks` (0 when clean), plus any other
    name the shards carry (a resumed run's earlier benchmarks)."""
    out = dict.fromkeys(benchmarks, 0)
    for (stage, kind), n in rejects.items():
        if stage == "decontam" and (m := _CONTAMINATED.match(kind)):
            out[m.group(1)] = out.get(m.group(1), 0) + n
    return out


_CONTAMINATED = re.compile(r"contaminated: (\S+) item")


def build_report(data_dir: Folder, ledger: dict, wall_s: float, skipped: list[str], extra: dict,
                 cost=None, benchmarks: list[str] = (), bins: tuple[list[float], list[str]] | None = None) -> dict:
    """The report dict; `cost(kept, tokens) -> dict` (scalequest.pipeline.cost) adds the cost block; `benchmarks`:
    the decontamination benchmarks' names (each gets a count, 0 included); `bins`: difficulty bin edges and names
    for the distribution before and after the difficulty stage."""
    rows, kept, rejects, tokens, counts = scan_counts(data_dir, bins[0] if bins else None)
    if counts and sum(counts[0]):
        extra = {**extra, "difficulty_bins": {"names": bins[1], "edges": bins[0], "before": counts[0],
                                              "after": counts[1]}}
    stage_time = {k: {"busy_s": round(v["busy_s"], 2), "span_s": round(v["last_end"] - v["first_start"], 2),
                      "batches": v["batches"], "rows": v["rows"]} for k, v in ledger.items()}
    total_tokens = sum(tokens.values())
    if cost is not None:
        extra = {**extra, "cost": cost(kept, {**tokens, "total": total_tokens})}
    return dict(candidates=rows, kept=kept, funnel=funnel_from_counts(rows, rejects), skipped_stages=skipped,
                contamination=contamination(rejects, list(benchmarks)),
                duplicates={"exact": sum(n for (st, _), n in rejects.items() if st == "dedup"),
                            "near": sum(n for (st, _), n in rejects.items() if st == "near_dup")},
                stage_time=stage_time, tokens_generated={**tokens, "total": total_tokens},
                wall_s=round(wall_s, 1), output_tokens_per_s=round(total_tokens / wall_s, 1) if wall_s else None,
                **extra)


def render_text(report: dict) -> str:
    lines = [f"ScaleQuest run: {report['kept']} kept of {report['candidates']} candidates in {report['wall_s']} s",
             "", f"{'stage':<12}{'in':>8}{'kept':>8}{'rejected':>10}  reasons"]
    for f in report["funnel"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in f["reasons"].items())
        lines.append(f"{f['stage']:<12}{f['in']:>8}{f['kept']:>8}{f['rejected']:>10}  {reasons}")
    for s in report["skipped_stages"]:
        lines.append(f"(skipped: {s})")
    if "difficulty_bins" in report:
        b = report["difficulty_bins"]
        lines.append(f"difficulty bins ({'/'.join(b['names'])}, cut at {b['edges']}): before "
                     f"{'/'.join(map(str, b['before']))}, after {'/'.join(map(str, b['after']))}")
    if "duplicates" in report:
        lines.append(f"duplicates removed: {report['duplicates']['exact']} exact, {report['duplicates']['near']} near")
    if report.get("contamination"):
        lines.append("contaminated (rejected by decontam): " + ", ".join(
            f"{name} {n}" for name, n in report["contamination"].items()))
    lines += ["", "busy time per stage (summed over replicas):"]
    lines += [f"  {k:<12}{v['busy_s']:>9.1f} s over {v['batches']} batches" for k, v in report["stage_time"].items()]
    t = report["tokens_generated"]
    lines += ["", f"tokens generated: {t['total']} (questions {t['question_tokens']}, judge {t['judge_tokens']}, "
                  f"responses {t['response_tokens']}); {report['output_tokens_per_s']} tok/s over the run"]
    if "cost" in report:
        from scalequest.pipeline.cost import render_cost

        lines += ["", *render_cost(report["cost"])]
    return "\n".join(lines)


def write_report(run_dir: Folder, report: dict) -> None:
    run_dir = as_folder(run_dir)
    (run_dir / "summary.json").write_text(json.dumps(report, indent=2))
    (run_dir / "summary.txt").write_text(render_text(report) + "\n")
