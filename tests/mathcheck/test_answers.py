"""Tests for scalequest.mathcheck.answers: boxed extraction, equivalence, voting, GSM8K gold answers."""

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scalequest.mathcheck import answers_match, extract_boxed, gsm8k_gold, vote_answers


@pytest.fixture(scope="module")
def data_dir(shared_data) -> Path:
    return shared_data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"The answer is $\boxed{5}$.", "5"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\frac{\sqrt{3}}{2}} done", r"\frac{\sqrt{3}}{2}"),
        (r"first \boxed{1} then corrected: \boxed{2}", "2"),
        (r"\boxed 5", "5"),
        (r"so $\boxed 42$.", "42"),
        (r"\fbox{7}", "7"),
        (r"\boxed {12}", "12"),
        (r"\boxed{ 3 }", "3"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{\left\{ x \right.}", r"\left\{ x \right."),
        (r"\boxed{a \\ b}", r"a \\ b"),
        (r"\boxed{\text{(B)}}", r"\text{(B)}"),
        ("\\[\n\\boxed{95}\n\\]", "95"),
    ],
)
def test_extract_boxed_finds_last_balanced_box(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The answer is 5.",
        r"\boxed{\frac{1}{2}",  # truncated generation: the box never closes
        r"\boxed{1} and later \boxed{\frac{3",  # the last box is truncated: no final answer
        r"\boxed{}",
        r"\boxed{   }",
        r"\boxed",
        r"\boxedfoo{3}",
        "}}}{{{",
        None,
        42,
    ],
)
def test_extract_boxed_returns_none_without_a_usable_box(text):
    assert extract_boxed(text) is None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (r"\frac12", "0.5"),
        (r"\dfrac{7}{2}", "3.5"),
        (r"2\sqrt2", r"\sqrt8"),
        ("x=3", "3"),
        ("10", "10.0"),
        (r"\$18", "18"),
        ("$18", "18"),
        ("1,000", "1000"),
        ("1,000,000", "1000000"),
        ("18.", "18"),
        (r"18\text{ cm}", "18"),
        (r"95^\circ", "95"),
        ("x^2+2x+1", "(x+1)^2"),
        ("2, 3", "3, 2"),
        (r"\left( -\frac{8}{5}, -\frac{1}{5} \right)", r"(-\frac85,-\frac15)"),
        (r"\text{neither}", r"\text{Neither}"),
    ],
)
def test_answers_match_equivalent_forms(a, b):
    assert answers_match(a, b)
    assert answers_match(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("2", "3"),
        (r"\frac{1}{3}", "0.333"),
        (r"\pi", "3.14159"),
        ("x=3", "x=4"),
        (r"\sqrt{2}", "2"),
        ("(1, 2)", "(2, 1)"),
        ("", "5"),
        ("  ", "  "),
        ("A", "B"),
    ],
)
def test_answers_match_rejects_different_answers(a, b):
    assert not answers_match(a, b)
    assert not answers_match(b, a)


@pytest.mark.parametrize(("a", "b"), [(None, "3"), ("3", None), (3, 3), (r"\frac{", r"\frac{"), ("}{", "5")])
def test_answers_match_never_raises_on_garbage(a, b):
    assert answers_match(a, b) in (True, False)


@pytest.mark.parametrize("huge", [r"10^{10^{10}}", r"99999999^{99999999}", r"(10^{7})!", r"10^{-10^{10}}"])
def test_answers_match_does_not_hang_on_huge_numbers(huge):
    # Without math-verify's timeouts, sympy would evaluate these forever; they fall back to string equality.
    assert not answers_match(huge, "3")
    assert answers_match(huge, huge)


def test_answers_match_works_off_main_thread():
    # math-verify's default timeouts use SIGALRM, which raises in a worker thread (how Ray may call stages).
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda pair: answers_match(*pair), [(r"\frac{3}{4}", "0.75"), ("7", "8")]))
    assert results == [True, False]


def test_math_verify_timeout_warning_is_silenced():
    for name in ("math_verify.parser", "math_verify.grader"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.ERROR


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([], []),
        ([None, None], [0.0, 0.0]),
        (["5"], [1.0]),
        (["5", None], [0.5, 0.0]),
        (["1/2", "0.5", r"\frac12", "3"], [0.75, 0.75, 0.75, 0.25]),
        (["2", "3", "2", "3"], [0.5, 0.5, 0.5, 0.5]),  # a tie: both clusters score the same
        (["4", "", "  ", "4.0"], [0.5, 0.0, 0.0, 0.5]),  # blank answers count like None
        (["x=3", "3", None, "x = 3", "7"], [0.6, 0.6, 0.0, 0.6, 0.2]),
    ],
)
def test_vote_answers_scores_fraction_of_all_responses(answers, expected):
    assert vote_answers(answers) == pytest.approx(expected)


def test_vote_answers_compares_against_cluster_representatives_only(monkeypatch):
    import scalequest.mathcheck.answers as module

    calls = []
    real = module.answers_match

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(module, "answers_match", counting)
    answers = ["1", "2", "3"] * 20
    module.vote_answers(answers)
    assert len(calls) <= len(answers) * 3  # O(n * clusters), not O(n^2) = 3600


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),
        ("... so the total is\n#### 1,080", "1080"),
        ("#### -3", "-3"),
        ("####12", "12"),
        ("#### 5\n", "5"),
        ("no marker here", None),
        ("#### ", None),
        (None, None),
    ],
)
def test_gsm8k_gold_reads_number_after_hashes(field, expected):
    assert gsm8k_gold(field) == expected


def test_extract_boxed_on_published_scalequest_samples(data_dir):
    lines = (data_dir / "scalequest_samples" / "samples.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    found = [extract_boxed(row["response"]) for row in rows]
    assert len(rows) == 100
    assert sum(answer is not None for answer in found) >= 99  # observed: 100 of 100
    assert all(answer.strip() for answer in found if answer is not None)


def test_gsm8k_gold_parses_every_train_row(data_dir):
    lines = (data_dir / "gsm8k" / "train.jsonl").read_text().splitlines()
    golds = [gsm8k_gold(json.loads(line)["answer"]) for line in lines if line.strip()]
    assert len(golds) == 7473
    assert all(gold is not None and gold.lstrip("-").replace(".", "", 1).isdigit() for gold in golds)


def _formatting_variants(gold: str) -> list[str]:
    """Ways a model writes the same GSM8K number inside a box."""
    number = float(gold)
    variants = [f"{gold}.0", f"\\${gold}", f"{gold}.", f"{gold}\\text{{ dollars}}", f" {gold} "]
    if number == int(number) and abs(number) >= 1000:
        variants.append(f"{int(number):,}")
    return variants


def test_answers_match_gsm8k_gold_against_formatting_variants(data_dir):
    lines = (data_dir / "gsm8k" / "train.jsonl").read_text().splitlines()[::50]
    golds = [gsm8k_gold(json.loads(line)["answer"]) for line in lines]
    failures = [(g, v) for g in golds for v in _formatting_variants(g) if not answers_match(g, v)]
    assert failures == []
    assert not any(answers_match(g, str(float(g) + 1)) for g in golds)
