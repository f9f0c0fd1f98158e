"""Solver evaluation on math benchmarks (`scalequest eval`): items with gold answers, answers sampled through the
engine layer, graded with math-verify, and pass@1 / pass@k / majority@k with intervals, per benchmark and per
MATH level and subject. See docs/evaluation.md."""
