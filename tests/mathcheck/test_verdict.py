"""Tests for scalequest.mathcheck.verdict.parse_verdict: only the judge's final explicit verdict counts."""

import pytest

from scalequest.mathcheck import parse_verdict

_REASONED_YES = """The problem asks for the area of a rectangle with sides 3 and 4.
Both values are given and positive, so the question is well posed.

Verdict: Yes"""

_REASONED_NO = """Yes, the problem is clear at first sight: it gives a triangle with sides 1, 2 and 5.
However, 1 + 2 < 5, so no such triangle exists and the conditions contradict each other.

**Verdict:** **No**"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Verdict: Yes", True),
        ("Verdict: No", False),
        ("verdict: YES", True),
        ("**Verdict:** **Yes**", True),
        ("*Verdict*: _no_", False),
        ("### Verdict: Yes", True),
        ("Final verdict - no", False),
        ("Final Verdict — Yes", True),
        ("Verdict:\nYes", True),
        ("Verdict: Yes.", True),
        ("Verdict: No, the problem cannot be solved.", False),
        ("Answer: yes.", True),
        ("Judgment: No", False),
        ("My final verdict is yes.", True),
        (r"\boxed{Yes}", True),
        (r"$\boxed{\text{No}}$", False),
        ("`Verdict: Yes`", True),
        (_REASONED_YES, True),
        (_REASONED_NO, False),
    ],
)
def test_verdict_reads_explicit_marker(text, expected):
    assert parse_verdict(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Verdict: No\n\nOn reflection the bounds are fine.\nVerdict: Yes", True),
        ("Answer: yes, x = 2 works.\nBut x must be odd.\nVerdict: No", False),
        ("I must end with `Verdict: Yes` or `Verdict: No`.\nThe data are consistent.\nVerdict: Yes", True),
        ("Reply with Verdict: Yes or Verdict: No.\nThe problem lacks the radius.\nVerdict: No", False),
    ],
)
def test_verdict_takes_last_marker(text, expected):
    assert parse_verdict(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The problem is solvable.\n\nYes", True),
        ("The radius is missing.\n**No.**", False),
        ("Looks fine.\nyes!\n\n", True),
        ("(No)", False),
    ],
)
def test_verdict_accepts_bare_yes_no_last_line(text, expected):
    assert parse_verdict(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "Yes, the problem is clear... but the conditions contradict",
        "Yes, it is solvable, and the answer is 12.",
        "The answer is yes if x > 0, otherwise no. I cannot decide.",
        "Is it solvable? yes. Is it well posed? Hard to say.",
        "the answer is no longer valid once x changes",
        "Verdict: Yes/No",
        "Verdict: Yes or No",
        "End with `Verdict: Yes` or `Verdict: No`.",
        "yes and no",
        "Verdict: maybe",
        "Verdict: Not sure",
        "Nothing to say.",
        "",
        "   \n  ",
        None,
        123,
    ],
)
def test_verdict_ignores_yes_inside_reasoning_and_ambiguous_output(text):
    assert parse_verdict(text) is None
