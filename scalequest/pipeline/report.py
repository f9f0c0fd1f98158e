"""The run report: the funnel per stage (in = kept + rejected, by reason), busy time per stage, tokens generated,
read back from the written Parquet so it describes what is on disk. Written as summary.json and summary.txt."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from scalequest.schema import FUNNEL_STAGES
from scalequest.stages.base import reason_kind


def funnel(rows: list[dict], stages=FUNNEL_STAGES) -> list[dict]:
    """Per stage: in, kept, rejected and rejected by reason kind. `rows` carry reject_stage / reject_reason."""
    by_stage: dict[str, Counter] = {s: Counter() for s in stages}
    for r in rows:
        if r["reject_reason"] is not None:
            by_stage.setdefault(r["reject_stage"], Counter())[reason_kind(r["reject_reason"])] += 1
    out, remaining = [], len(rows)
    for stage, reasons in by_stage.items():
        rejected = sum(reasons.values())
        out.append(dict(stage=stage, **{"in": remaining}, kept=remaining - rejected, rejected=rejected,
                        reasons=dict(reasons.most_common())))
        remaining -= rejected
    return out


def build_report(data_dir: Path, ledger: dict, wall_s: float, skipped: list[str], extra: dict) -> dict:
    import pyarrow.dataset as pads

    table = pads.dataset(str(data_dir), format="parquet", partitioning="hive").to_table(
        columns=["reject_stage", "reject_reason", "question_tokens", "judge_tokens", "response_tokens", "status"])
    rows = table.select(["reject_stage", "reject_reason"]).to_pylist()
    tokens = {c: int(sum(v or 0 for v in table.column(c).to_pylist()))
              for c in ("question_tokens", "judge_tokens", "response_tokens")}
    kept = sum(1 for s in table.column("status").to_pylist() if s == "kept")
    stage_time = {k: {"busy_s": round(v["busy_s"], 2), "span_s": round(v["last_end"] - v["first_start"], 2),
                      "batches": v["batches"], "rows": v["rows"]} for k, v in ledger.items()}
    total_tokens = sum(tokens.values())
    return dict(candidates=len(rows), kept=kept, funnel=funnel(rows), skipped_stages=skipped,
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
    lines += ["", "busy time per stage (summed over replicas):"]
    lines += [f"  {k:<12}{v['busy_s']:>9.1f} s over {v['batches']} batches" for k, v in report["stage_time"].items()]
    t = report["tokens_generated"]
    lines += ["", f"tokens generated: {t['total']} (questions {t['question_tokens']}, judge {t['judge_tokens']}, "
                  f"responses {t['response_tokens']}); {report['output_tokens_per_s']} tok/s over the run"]
    return "\n".join(lines)


def write_report(run_dir: Path, report: dict) -> None:
    (run_dir / "summary.json").write_text(json.dumps(report, indent=2))
    (run_dir / "summary.txt").write_text(render_text(report) + "\n")
