"""Grading and the report's numbers on hand-made answers: equivalent but differently written answers count, a
missing or unclosed box does not; pass@k, majority@k and the interval match their definitions; gold answers come
out of GSM8K's '####', MATH's answer field and a solution's box."""

import math

import pytest

from scalequest.evaluation.items import gold_answer
from scalequest.evaluation.metrics import breakdown, grade, interval, majority_correct, pass_at_k, summarize


def test_equivalent_answers_count_and_missing_boxes_do_not():
    texts = ["so \\boxed{0.5}", "\\boxed{\\frac12}", "\\boxed{1/2}", "the answer is 0.5", "\\boxed{\\frac{1}{2",
             "\\boxed{2}", None]
    assert grade(texts, "\\frac{1}{2}") == [True, True, True, False, False, False, False]
    assert grade(["\\boxed{18}", "\\boxed{\\$18}", "\\boxed{18.0}"], "18") == [True, True, True]
    assert grade(["\\boxed{18}"], None) == [False] and grade(["\\boxed{18}"], "  ") == [False]


def test_majority_pools_equivalent_answers_and_ignores_unboxed_ones():
    assert majority_correct(["\\boxed{0.5}", "\\boxed{1/2}", "\\boxed{3}", "no box", "no box"], "\\frac12")
    assert not majority_correct(["\\boxed{3}", "\\boxed{3}", "\\boxed{0.5}"], "\\frac12")
    assert not majority_correct(["no box", "none"], "1")
    assert majority_correct(["\\boxed{1}", "\\boxed{2}"], "1")  # a tie goes to the first answer


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(5, 0, 1) == 0 and pass_at_k(5, 5, 1) == 1
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 1, 5) == 1.0
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))


def test_interval_is_the_binomial_standard_error_for_one_sample_each():
    scores = [1.0] * 30 + [0.0] * 70
    ci = interval(scores)
    p = 0.3
    assert ci["value"] == pytest.approx(p) and ci["n"] == 100
    assert ci["se"] == pytest.approx(math.sqrt(p * (1 - p) / 99), rel=1e-9)  # sample variance over n-1
    assert ci["low"] == pytest.approx(p - 1.96 * ci["se"]) and ci["high"] == pytest.approx(p + 1.96 * ci["se"])
    assert interval([1.0, 1.0])["high"] == 1.0 and interval([])["value"] is None


def test_summary_and_breakdown():
    rows = [{"correct": [True, False], "majority": True, "level": "Level 1", "subject": "Algebra"},
            {"correct": [False, False], "majority": False, "level": "Level 5", "subject": "Algebra"},
            {"correct": [True, True], "majority": True, "level": "Level 5", "subject": None}]
    s = summarize(rows, 2)
    assert s["questions"] == 3 and s["pass@1"]["value"] == pytest.approx(0.5)
    assert s["pass@2"]["value"] == pytest.approx(2 / 3) and s["majority@2"]["value"] == pytest.approx(2 / 3)
    levels = breakdown(rows, "level", 2)
    assert list(levels) == ["Level 1", "Level 5"] and levels["Level 5"]["questions"] == 2
    assert list(breakdown(rows, "subject", 2)) == ["Algebra"]
    assert "pass@2" not in summarize(rows, 1)


def test_gold_answers_of_gsm8k_math_and_custom_files():
    assert gold_answer({"answer": "She makes 9 * 2 = $18.\n#### 1,018"}) == "1018"
    assert gold_answer({"answer": "\\dfrac{1}{9}"}) == "\\dfrac{1}{9}"
    assert gold_answer({"solution": "so the sum is $\\boxed{42}$."}) == "42"
    assert gold_answer({"answer": 7}) == "7"
    assert gold_answer({"final": "x=3", "answer": "ignored"}, "final") == "x=3"
    assert gold_answer({"solution": "\\boxed{1}"}, "final") is None
