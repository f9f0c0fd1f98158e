"""The question-type filter on literal batches: each type rejected by its own rule with its reason, clean
questions (including look-alikes) kept, each rule switchable, and its reject rate on real train sets."""

import json

import pytest

from scalequest.config import load_config
from scalequest.stages.base import reason_kind
from scalequest.stages.question_type import FilterQuestionType


@pytest.fixture(scope="module")
def cfg():
    return load_config("tiny").question_type


def reasons(cfg, questions):
    out = FilterQuestionType(cfg)({"question": questions})
    assert set(filter(None, out["reject_stage"])) <= {"question_type"}
    return [reason_kind(r) if r else None for r in out["reject_reason"]]


@pytest.mark.parametrize(("question", "kind"), [
    ("7500.", "not a question: only a number or an expression"),
    ("11 * 26 * 3", "not a question: only a number or an expression"),
    ("Abc", "not a question: a fragment"),
    ("20 in 11 minutes 2. Abc 3, 2, 9, 3 There is only 1 20", "not a question: no ask"),
    ("A farmer has 12 cows and 7 goats on his farm near the river.", "not a question: no ask"),
    ("What is $2+3$? (A) 4 (B) 5 (C) 6 (D) 7", "multiple choice"),
    ("Which is largest? $\\textbf{(A)}\\ 1 \\qquad \\textbf{(B)}\\ 2 \\qquad \\textbf{(C)}\\ 3$", "multiple choice"),
    ("Which number is prime?\nA. 4\nB. 9\nC. 11", "multiple choice"),
    ("True or false: every even number greater than 2 is a sum of two primes.", "yes/no question"),
    ("Is 91 a prime number?", "yes/no question"),
    ("Tom has 3 apples and eats one. Does he have more than one apple left?", "yes/no question"),
    ("Prove that the sum of two odd integers is even.", "proof question"),
    ("Let $n$ be a positive integer. Show that $n^3 - n$ is divisible by 6.", "proof question"),
    ("(a) Find the area of the square. (b) Find its perimeter.", "multi-part question"),
    ("A train leaves at 3 pm. (i) When does it arrive? (ii) How far does it go?", "multi-part question"),
    ("How many apples does Ann have? How many pears does she have?", "multi-part question"),
])
def test_each_question_type_is_rejected_by_its_rule(cfg, question, kind):
    assert reasons(cfg, [question]) == [kind]


@pytest.mark.parametrize("question", [
    "Compute $\\dbinom{8}{4}$.",
    "Multiply $(x^4 +18 x^2 + 324) (x^2-18)$.",
    "If $f(x) = 3x + 1$, then $f(2)=$",
    "Is $f(x) = x^3 - x$ an even function, odd function, or neither? Enter \"odd\", \"even\", or \"neither\".",
    "Records show that the team won 3 matches and drew 4. How many points does it have?",
    "There have been 15 \"Where's Waldo?\" books published, each with 30 puzzles. How many puzzles are there?",
    "Let $f$ be a function such that (i) $f(1) = 1,$ (ii) $f(x+1) = f(x) + 2$ for all $x$. Find $f(10)$.",
    "Lisa saved $1200. Her mother gave her $300. Calculate how much she has now.",
    "What is the largest prime factor of 1001? That is, which prime divides it and is greatest?",
    ("Janet's ducks lay 16 eggs per day. She eats three for breakfast. How much does she make every day at the "
     "farmers' market?"),
])
def test_clean_questions_and_look_alikes_pass(cfg, question):
    assert reasons(cfg, [question]) == [None]


def test_each_rule_can_be_switched_off_and_the_stage_too(cfg):
    questions = ["Is 91 a prime number?", "Prove that 2 is prime.", "What is 1+1? (A) 1 (B) 2", "7500."]
    assert None not in reasons(cfg, questions)
    off = cfg.model_copy(update={"yes_no": False, "proof": False})
    assert reasons(off, questions)[:2] == [None, None] and None not in reasons(off, questions)[2:]
    assert reasons(cfg.model_copy(update={"enabled": False}), questions) == [None] * 4


def test_rows_rejected_earlier_keep_their_reason(cfg):
    out = FilterQuestionType(cfg)({"question": ["7500.", "What is 2+2?"], "reject_stage": ["language", None],
                                   "reject_reason": ["language 'de'", None]})
    assert out["reject_reason"] == ["language 'de'", None]


@pytest.mark.parametrize(("name", "field", "most_other"), [("math", "problem", 0.001), ("gsm8k", "question", 0.001)])
def test_real_train_questions_are_rejected_only_when_multiple_choice(cfg, shared_data, name, field, most_other):
    questions = [json.loads(line)[field] for line in (shared_data / name / "train.jsonl").read_text().splitlines()]
    got = reasons(cfg, questions)
    other = [q for q, r in zip(questions, got) if r and r != "multiple choice"]
    assert len(other) <= most_other * len(questions), other[:3]
    choice = [q for q, r in zip(questions, got) if r == "multiple choice"]
    assert all("A" in q and "B" in q for q in choice)  # MATH train has ~2% AMC-style questions: those go
