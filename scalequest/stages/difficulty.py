"""Difficulty: score each question with a learned regression model of the solver's fail rate (higher = harder),
then drop the easiest share. The share needs every score first, so the pipeline computes the threshold between
the two stages (`difficulty_threshold`).

  ScoreDifficulty  in: question            out: + difficulty
  DropEasiest      in: difficulty          out: reject rows below the threshold
"""

from __future__ import annotations

import math

from scalequest.stages.base import Rejects, column, none_if_nan, require

STAGE = "difficulty"


class ScoreDifficulty:
    """`scorer.score(texts) -> list[float]`; defaults to the HF sequence-regression model at `cfg.model_path`."""

    def __init__(self, cfg, scorer=None):
        if scorer is None:
            from scalequest.engines.scorers import SequenceScorer

            scorer = SequenceScorer(cfg.model_path, cfg.trust_remote_code, cfg.batch_size, cfg.max_length)
        self.scorer = scorer

    def __call__(self, batch: dict) -> dict:
        n = require("ScoreDifficulty", batch, ["question"])
        questions = column(batch, "question")
        rejects = Rejects(batch, n)
        scores = [None] * n
        rows = rejects.kept()
        if rows:
            for i, s in zip(rows, self.scorer.score([questions[i] for i in rows])):
                scores[i] = float(s)
                if not math.isfinite(scores[i]):
                    rejects.reject(i, STAGE, f"difficulty score not finite ({s})")
        out = {k: column(batch, k) for k in batch}
        out.update(difficulty=scores, **rejects.columns())
        return out


def difficulty_threshold(scores: list[float], drop_share: float) -> float | None:
    """The score below which `drop_share` of `scores` lies (None when nothing is to be dropped)."""
    vals = sorted(s for s in scores if s is not None and math.isfinite(s))
    if not vals or drop_share <= 0:
        return None
    k = int(len(vals) * drop_share)
    return vals[k] if k < len(vals) else math.inf


def generator_thresholds(scores: dict[str, list[float]], shares: dict[str, float]) -> dict[str, float | None]:
    """Per generator, the score below which its `shares[name]` easiest questions lie, from its `scores`."""
    return {name: difficulty_threshold(scores.get(name, []), share) for name, share in shares.items()}


class DropEasiest:
    """Reject kept rows whose difficulty is below `threshold` (None = keep all); with `above=True`, rows
    above it instead (the upper end of a requested difficulty range). A dict threshold is per generator (input
    column `generator`; a generator missing from it keeps everything)."""

    def __init__(self, threshold: float | None | dict[str, float | None], above: bool = False):
        self.threshold, self.above = threshold, above

    def __call__(self, batch: dict) -> dict:
        per_gen = isinstance(self.threshold, dict)
        n = require("DropEasiest", batch, ["difficulty", "generator"] if per_gen else ["difficulty"])
        scores = [none_if_nan(s) for s in column(batch, "difficulty")]
        gens = column(batch, "generator") if per_gen else [None] * n
        rejects = Rejects(batch, n)
        for i in rejects.kept():
            s, t = scores[i], self.threshold.get(gens[i]) if per_gen else self.threshold
            if s is None or t is None:
                continue
            if not self.above and s < t:
                rejects.reject(i, STAGE, f"too easy (difficulty {s:.3f} < {t:.3f})")
            elif self.above and s > t:
                rejects.reject(i, STAGE, f"too hard (difficulty {s:.3f} > {t:.3f})")
        out = {k: column(batch, k) for k in batch}
        out.update(**rejects.columns())
        return out
