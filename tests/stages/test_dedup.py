import numpy as np

from scalequest.stages.dedup import DropDuplicates, SeenSet


def test_dedup_rejects_repeats_within_and_across_batches():
    stage = DropDuplicates()
    first = stage({"question": ["What is 2+2?", "what   is 2+2?", "What is 3+3?"]})
    assert first["reject_reason"] == [None, "duplicate of an earlier question", None]
    second = stage({"question": np.array(["WHAT IS 3+3?", "What is 4+4?"], dtype=object)})
    assert second["reject_stage"] == ["dedup", None]
    assert len(set(first["question_hash"])) == 2


def test_dedup_skips_rows_rejected_upstream_and_disabled_mode():
    stage = DropDuplicates()
    out = stage({"question": ["Q1", "Q1"], "reject_stage": ["language", None], "reject_reason": ["x", None]})
    assert out["reject_reason"] == ["x", None]  # the kept copy is the first *kept* one
    off = DropDuplicates(enabled=False)({"question": ["Q", "Q"]})
    assert off["reject_reason"] == [None, None]


def test_seen_set_marks_only_first_occurrence():
    s = SeenSet()
    assert s.first_seen(["a", "b", "a"]) == [True, True, False]
    assert s.first_seen(["b", "c"]) == [False, True]
