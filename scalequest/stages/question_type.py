"""Question-type filter: rule-based, one reason per rejected row, each rule switched in `question_type.*`.
Following Big-Math's filters, it rejects question types a solver cannot be trained on with one boxed answer:

  not_a_question   no ask at all (no '?' and no asking word such as find / compute / how many), a fragment
                   (fewer than `min_words` words), or only a number or an expression ("34 * 8."): the tiny run
                   kept "7500." and "20 in 11 minutes 2. Abc 3, 2, 9, 3 There is only 1 20"
  multiple_choice  two or more answer options: (A) … (B) …, $\\textbf{(A)}$ …, or lines "A. …" / "B) …"
  yes_no           "true or false", "yes or no", or an ask that is a yes/no question ("Is … ?", "Does … ?") with no
                   alternative offered ("Is f even, odd, or neither?" is not yes/no)
  proof            "prove that", "show that", "demonstrate that", "prove or disprove"
  multi_part       labelled parts ((a) and (b), (i) and (ii), "Part 1" and "Part 2") or two or more separate asks
                   ("How many … ? What … ?")

Math spans are masked before the word rules run, so "$(a)$" in a formula or a "?" inside LaTeX does not count.

  in: question    out: (a reject for rows of a rejected type)
"""

from __future__ import annotations

import re

from scalequest.mathcheck.text import MATH_SPAN
from scalequest.stages.base import Rejects, column, require

STAGE = "question_type"

_OPTION = re.compile(r"\(\s*([A-E])\s*\)|\\textbf\{\s*\(\s*([A-E])\s*\)|(?:^|\n)\s*([A-E])[.)]\s+\S")
_ASK_WORDS = re.compile(
    r"\b(find|compute|calculate|determine|evaluate|simplify|solve|express|what|how|which|who|whom|when|where|why|"
    r"give|write|rewrite|list|estimate|rationali[sz]e|factor|expand|convert|round|identify|enter|count|sketch|"
    r"graph|multiply|divide|add|subtract|reduce|name|complete|fill|"
    r"prove|show|derive|verify|decide|check|work out)\b", re.IGNORECASE)
_YES_NO_EXPLICIT = re.compile(r"\b(true or false|yes or no)\b", re.IGNORECASE)
_AUX_START = re.compile(r"^(is|are|was|were|does|do|did|can|could|will|would|has|have|had|should|must|may|might)\b",
                        re.IGNORECASE)
# "show that" only as an instruction (sentence start): "records show that …" is a statement
_PROOF = re.compile(r"\bprove that\b|\bprove or disprove\b|\bprove\b(?= (the|this|it)\b)"
                    r"|(?:^|[.?!:]\s+|\n\s*)(show|demonstrate|verify) that\b", re.IGNORECASE)
_PART_LABELS = (re.compile(r"\(\s*[a-d]\s*\)"), re.compile(r"\(\s*(?:i|ii|iii|iv)\s*\)"),
                re.compile(r"\bpart\s*(?:[1-4]|\(?[a-d]\)?)[:.)]", re.IGNORECASE))
_QUOTED = re.compile(r"``.*?''|\"[^\"\n]*\"|“[^”]*”")
_SENTENCE = re.compile(r"[^.?!]*[?]")
_RESTATED = re.compile(r"^(that is|in other words|i\.e\.|equivalently)\b", re.IGNORECASE)
_FILL_IN = re.compile(r"=\s*\$?\s*$")  # "… then $f_{1993}(3)=$": the blank is the ask
_NUMBER_ONLY = re.compile(r"^[\s\d.,+\-*/=%$()]*$")


def _masked(text: str) -> str:
    """`text` with math spans and quotations replaced by a placeholder word (so their symbols, or a question
    quoted in the story, cannot trigger a rule)."""
    def span(m: re.Match) -> str:  # a sentence that ends inside the math still ends
        return " MATH. " if m.group(0).strip("$ \\,;]").endswith(".") else " MATH "

    return _QUOTED.sub(" QUOTE ", MATH_SPAN.sub(span, text))


def _asking(text: str) -> bool:
    return "?" in text or bool(_ASK_WORDS.search(text)) or bool(_FILL_IN.search(text))


def _yes_no_ask(ask: str, plain: str) -> bool:
    """`ask` (the last question) is answered by yes or no: it opens with an auxiliary verb, offers no
    alternatives ("… even, odd, or neither?") and nothing else in the text asks for a value."""
    return bool(_AUX_START.match(ask)) and not re.search(r"\bor\b", ask, re.IGNORECASE) \
        and not _ASK_WORDS.search(plain.replace(ask, ""))


def _labelled_parts(plain: str) -> int:
    """How many labelled parts ((a), (ii), Part 2) carry an ask of their own. Labels that list conditions
    ("such that (i) f(1) = 1, (ii) …; find …") have at most one."""
    for labels in _PART_LABELS:
        pieces = labels.split(plain)
        if len(pieces) >= 3:
            return sum(_asking(p) for p in pieces[1:])
    return 0


def classify(text: str, rules) -> str | None:
    """The reject reason for question `text` under the enabled `rules` (a QuestionTypeConfig), or None."""
    plain = _masked(text)
    words = re.findall(r"\w+", plain)
    if rules.multiple_choice:
        letters = {next(g for g in m.groups() if g) for m in _OPTION.finditer(text)}
        if {"A", "B"} <= letters:
            return f"multiple choice ({len(letters)} options)"
    if rules.yes_no and (m := _YES_NO_EXPLICIT.search(plain)):
        return f"yes/no question ('{m.group(0).lower()}')"
    if rules.not_a_question:
        if _NUMBER_ONLY.match(text):
            return "not a question: only a number or an expression"
        if len(words) < rules.min_words:
            return f"not a question: a fragment ({len(words)} words)"
        if not _asking(text):  # on the raw text: "$" is also GSM8K's dollar sign, so masking could hide the ask
            return "not a question: no ask"
    asks = [s for s in (" ".join(a.split()) for a in _SENTENCE.findall(plain)) if len(s.split()) >= 2]
    if rules.yes_no and asks and _yes_no_ask(asks[-1], plain):
        return "yes/no question"
    if rules.proof and (m := _PROOF.search(plain)):
        return f"proof question ('{m.group(0).lower()}')"
    if rules.multi_part:
        if _labelled_parts(plain) >= 2:
            return "multi-part question (labelled parts)"
        separate = [a for a in asks if not _RESTATED.match(a)]
        if len(separate) >= 2:
            return f"multi-part question ({len(separate)} asks)"
    return None


class FilterQuestionType:
    """Reject multiple-choice, yes/no, proof, multi-part and not-a-question candidates (`cfg`: QuestionTypeConfig;
    `cfg.enabled` false passes every row)."""

    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self, batch: dict) -> dict:
        n = require("FilterQuestionType", batch, ["question"])
        questions = column(batch, "question")
        rejects = Rejects(batch, n)
        if self.cfg.enabled:
            for i in rejects.kept():
                if reason := classify(questions[i] or "", self.cfg):
                    rejects.reject(i, STAGE, reason)
        out = {k: column(batch, k) for k in batch}
        out.update(**rejects.columns())
        return out
