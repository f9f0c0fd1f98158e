"""Reward: score every candidate response of a question. Answer agreement (the share of the N responses whose
final answer math-verify finds equivalent) is always computed; a reward model score is added when one is configured.

  in: question, responses, response_answers    out: + response_rewards (None without a model), response_agreement
"""

from __future__ import annotations

from scalequest.mathcheck import vote_answers
from scalequest.stages.base import Rejects, column, list_or_none, require

STAGE = "reward"


class ScoreResponses:
    """`scorer.score_pairs(questions, responses) -> list[float]`; built from `cfg` when not given ('agreement'
    needs none). `num_samples` is the N the solver drew (denominator of the agreement share)."""

    def __init__(self, cfg, num_samples: int, scorer=None):
        self.num_samples = num_samples
        if scorer is None and cfg.kind != "agreement":
            from scalequest.engines.scorers import build_reward_scorer

            scorer = build_reward_scorer(cfg)
        self.scorer = scorer

    def __call__(self, batch: dict) -> dict:
        n = require("ScoreResponses", batch, ["question", "responses", "response_answers"])
        questions = column(batch, "question")
        responses = [list_or_none(v) or [] for v in column(batch, "responses")]
        answers = [list_or_none(v) or [] for v in column(batch, "response_answers")]
        rejects = Rejects(batch, n)
        rewards, agreement = [None] * n, [None] * n
        rows = [i for i in rejects.kept() if responses[i]]
        for i in rows:
            padded = list(answers[i]) + [None] * max(0, self.num_samples - len(answers[i]))
            agreement[i] = vote_answers(padded)[: len(answers[i])]
        if self.scorer is not None and rows:
            flat_q = [questions[i] for i in rows for _ in responses[i]]
            flat_r = [r for i in rows for r in responses[i]]
            scores = iter(self.scorer.score_pairs(flat_q, flat_r))
            for i in rows:
                rewards[i] = [float(next(scores)) for _ in responses[i]]
        out = {k: column(batch, k) for k in batch}
        out.update(response_rewards=rewards, response_agreement=agreement, **rejects.columns())
        return out
