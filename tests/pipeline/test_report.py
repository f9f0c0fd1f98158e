from collections import Counter

import pytest

from scalequest.pipeline.report import contamination, funnel, render_text
from scalequest.stages.base import reason_kind


@pytest.mark.parametrize("reason, kind", [
    ("language 'fr' (fastText 0.87)", "language"),
    ("no end-of-turn within 160 tokens", "no end-of-turn within tokens"),
    ("too easy (difficulty 0.100 < 0.400)", "too easy"),
    ("non-English character '你' (CJK UNIFIED IDEOGRAPH-4F60)", "non-English character"),
    ("judged unsolvable", "judged unsolvable"),
    ("contaminated: gsm8k_test item 17 (9 of 41 13-grams shared)", "contaminated: gsm8k_test item"),
    ("contaminated: math500 item 3 (exact text)", "contaminated: math500 item"),
])
def test_reason_kind_groups_details(reason, kind):
    assert reason_kind(reason) == kind


def test_funnel_adds_up_per_stage():
    rows = ([{"reject_stage": None, "reject_reason": None}] * 3
            + [{"reject_stage": "language", "reject_reason": "language 'fr' (fastText 0.9)"}] * 2
            + [{"reject_stage": "solvability", "reject_reason": "judged unsolvable"}])
    f = {s["stage"]: s for s in funnel(rows)}
    assert f["generate"] == {"stage": "generate", "in": 6, "kept": 6, "rejected": 0, "reasons": {}}
    assert f["language"]["kept"] == 4 and f["language"]["reasons"] == {"language": 2}
    assert f["solvability"]["in"] == 4 and f["solvability"]["kept"] == 3
    assert f["select"]["kept"] == 3


def test_funnel_keeps_unknown_stages_at_the_end():
    f = funnel([{"reject_stage": "custom", "reject_reason": "x"}])
    assert f[-1]["stage"] == "custom" and f[-1]["in"] == 1 and f[-1]["kept"] == 0


def test_render_text_shows_funnel_and_skips():
    report = dict(candidates=1, kept=0, wall_s=1.0, funnel=funnel([{"reject_stage": "dedup", "reject_reason": "d"}]),
                  skipped_stages=["difficulty: none"], stage_time={}, output_tokens_per_s=1.0,
                  tokens_generated=dict(total=1, question_tokens=1, judge_tokens=0, response_tokens=0))
    text = render_text(report)
    assert "dedup" in text and "(skipped: difficulty: none)" in text


def test_report_counts_stream_over_the_shards_and_match_the_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scalequest.pipeline.report import build_report

    rows = [{"reject_stage": None, "reject_reason": None}] * 3 + [
        {"reject_stage": "difficulty", "reject_reason": f"too easy (difficulty 0.{i} < 0.5)"} for i in range(4)] + [
        {"reject_stage": "language", "reject_reason": "language 'fr' (fastText 0.9)"}] * 2
    for i, (status, part) in enumerate([("kept", rows[:3]), ("rejected", rows[3:6]), ("rejected", rows[6:])]):
        folder = tmp_path / f"status={status}"
        folder.mkdir(exist_ok=True)
        schema = pa.schema([("reject_stage", pa.string()), ("reject_reason", pa.string()),
                            *[(c, pa.int64()) for c in ("question_tokens", "judge_tokens", "response_tokens")]])
        pq.write_table(pa.Table.from_pylist([{**r, "question_tokens": 2, "judge_tokens": 1, "response_tokens": None}
                                             for r in part], schema=schema), folder / f"part-{i}.parquet")
    report = build_report(tmp_path, {}, 2.0, [], {})
    assert report["candidates"] == 9 and report["kept"] == 3
    assert report["funnel"] == funnel(rows)
    assert report["tokens_generated"] == {"question_tokens": 18, "judge_tokens": 9, "response_tokens": 0,
                                          "total": 27}


def test_contamination_counts_every_configured_benchmark_zero_included():
    rejects = Counter({("decontam", "contaminated: math_test item"): 3, ("decontam", "contaminated: old item"): 1,
                       ("dedup", "duplicate of an earlier question"): 5})
    assert contamination(rejects, ["gsm8k_test", "math_test"]) == {"gsm8k_test": 0, "math_test": 3, "old": 1}
