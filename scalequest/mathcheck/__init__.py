"""Pure-logic math checks (no models, no Ray): answer extraction and equivalence, judge verdicts, text filters.

Test: `pytest tests/mathcheck`.
"""

from scalequest.mathcheck.answers import answers_match, extract_boxed, gsm8k_gold, vote_answers
from scalequest.mathcheck.text import foreign_script, normalize_question, question_hash
from scalequest.mathcheck.verdict import parse_verdict

__all__ = [
    "answers_match",
    "extract_boxed",
    "foreign_script",
    "gsm8k_gold",
    "normalize_question",
    "parse_verdict",
    "question_hash",
    "vote_answers",
]
