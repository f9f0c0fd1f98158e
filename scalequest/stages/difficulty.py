"""Difficulty: score each question with a learned regression model of the solver's fail rate (higher = harder),
then drop the easiest share, then (optionally) sample toward target shares of difficulty bins. Both need the
score distribution first, so the pipeline sets the threshold and the bins' acceptance probabilities from a
calibration sample (`difficulty_threshold`, `bin_acceptance`) and the stages apply them row by row.

  ScoreDifficulty   in: question            out: + difficulty
  DropEasiest       in: difficulty          out: reject rows below the threshold
  SampleDifficulty  in: id, difficulty      out: reject rows at random with their bin's rejection probability
"""

from __future__ import annotations

import bisect
import math

from scalequest.stages.base import Rejects, column, none_if_nan, require
from scalequest.stages.generate_questions import row_seed

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


def bin_counts(scores: list[float], edges: list[float]) -> list[int]:
    """How many `scores` fall in each bin cut by `edges` (bin i: edges[i-1] <= score < edges[i])."""
    counts = [0] * (len(edges) + 1)
    for s in scores:
        if s is not None and math.isfinite(s):
            counts[bisect.bisect_right(edges, s)] += 1
    return counts


def bin_acceptance(scores: list[float], edges: list[float], target: list[float]) -> list[float]:
    """Per bin, the probability to keep a row so that the kept rows' bin shares match `target`, keeping as many
    rows as possible: a_b ∝ target_b / observed_b, scaled so the largest is 1. A bin the sample never saw keeps
    everything (its target cannot be steered); one with target 0 keeps nothing."""
    counts = bin_counts(scores, edges)
    total = sum(counts)
    ratios = [t / (c / total) if c else None for t, c in zip(target, counts)] if total else [None] * len(counts)
    top = max((r for r in ratios if r), default=None)
    return [1.0 if r is None else (r / top if top else 0.0) for r in ratios]


class SampleDifficulty:
    """Keep each scored row with its difficulty bin's acceptance probability, drawn from (seed, id) so a row's fate
    is the same in every execution. `acceptance`: generator → per-bin probabilities (None or missing = keep all);
    `edges` and `names`: the bins (difficulty.bin_edges / names)."""

    def __init__(self, acceptance: dict[str, list[float] | None], edges: list[float], names: list[str], seed: int):
        self.acceptance, self.edges, self.names, self.seed = acceptance, edges, names, seed

    def __call__(self, batch: dict) -> dict:
        n = require("SampleDifficulty", batch, ["id", "difficulty", "generator"])
        ids, gens = column(batch, "id"), column(batch, "generator")
        scores = [none_if_nan(s) for s in column(batch, "difficulty")]
        rejects = Rejects(batch, n)
        for i in rejects.kept():
            accept = self.acceptance.get(gens[i])
            if scores[i] is None or not accept:
                continue
            b = bisect.bisect_right(self.edges, scores[i])
            if row_seed(self.seed, int(ids[i]), "difficulty") / 2**31 >= accept[b]:
                rejects.reject(i, STAGE, f"sampled out: {self.names[b]} over its target share "
                                         f"(kept with p={accept[b]:.2f})")
        out = {k: column(batch, k) for k in batch}
        out.update(**rejects.columns())
        return out
