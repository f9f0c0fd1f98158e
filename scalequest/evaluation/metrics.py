"""Grading and the numbers an evaluation reports. Pure functions, no models.

  grade(texts, gold) -> [bool]            each sampled answer's last \\boxed{} against the gold answer (math-verify)
  majority_correct(texts, gold) -> bool   the most common answer (equivalent answers pooled) is right
  pass_at_k(n, c, k) -> float             unbiased pass@k from c right of n samples (Chen et al. 2021)
  summarize(rows, k) -> dict              pass@1, pass@k, majority@k with a 95% interval, over rows {"correct": [..]}
  breakdown(rows, key, k) -> {value: summary}   the same per MATH level / subject

Intervals: 1.96 standard errors of the mean of the per-question scores (questions are the sampling unit; with one
sample per question this is the binomial standard error), clipped to [0, 1].
Test: tests/evaluation/test_metrics.py.
"""

from __future__ import annotations

import math

from scalequest.mathcheck import answers_match, extract_boxed, vote_answers

Z95 = 1.96


def grade(texts: list[str | None], gold: str | None) -> list[bool]:
    """Per sampled answer: does its last \\boxed{} equal `gold` (math-verify)? No box, no text or no gold → False."""
    if not isinstance(gold, str) or not gold.strip():
        return [False] * len(texts)
    return [bool(answer) and answers_match(answer, gold) for answer in (extract_boxed(t) for t in texts)]


def majority_correct(texts: list[str | None], gold: str | None) -> bool:
    """Is the majority answer right? Equivalent answers form one vote (`vote_answers`); a tie goes to the answer
    that came first; answers without a box do not vote."""
    answers = [extract_boxed(t) for t in texts]
    votes = vote_answers(answers)
    if not any(votes):
        return False
    best = max(range(len(answers)), key=lambda i: (votes[i], -i))
    return grade([texts[best]], gold)[0]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c right) is right."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def interval(scores: list[float]) -> dict:
    """{"value", "se", "low", "high", "n"}: the mean of per-question scores with a 95% interval."""
    n = len(scores)
    if not n:
        return {"value": None, "se": None, "low": None, "high": None, "n": 0}
    mean = sum(scores) / n
    var = sum((s - mean) ** 2 for s in scores) / (n - 1) if n > 1 else 0.0
    se = math.sqrt(var / n)
    return {"value": mean, "se": se, "low": max(0.0, mean - Z95 * se), "high": min(1.0, mean + Z95 * se), "n": n}


def summarize(rows: list[dict], k: int) -> dict:
    """Over rows with "correct" (k bools) and "majority" (bool): pass@1, and with k > 1 pass@k and majority@k."""
    out = {"questions": len(rows), "samples": k,
           "pass@1": interval([sum(r["correct"]) / len(r["correct"]) for r in rows])}
    if k > 1:
        out[f"pass@{k}"] = interval([pass_at_k(len(r["correct"]), sum(r["correct"]), k) for r in rows])
        out[f"majority@{k}"] = interval([float(r["majority"]) for r in rows])
    return out


def breakdown(rows: list[dict], key: str, k: int) -> dict[str, dict]:
    """`summarize` per value of `key` (e.g. MATH's level or subject), sorted by value; rows without it are left out."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r.get(key) is not None:
            groups.setdefault(str(r[key]), []).append(r)
    return {value: summarize(groups[value], k) for value in sorted(groups)}

