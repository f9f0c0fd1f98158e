"""Selection: keep the best response per question — highest reward when a reward model scored them, otherwise
highest answer agreement; ties go to the earlier response. Optional thresholds (`select.*`) then reject a question
whose selected answer too few responses agree with, or whose selected response's reward is too low.

  in: responses, response_answers, response_rewards, response_agreement
  out: + response, final_answer, reward, agreement
"""

from __future__ import annotations

from scalequest.stages.base import Rejects, column, list_or_none, require

STAGE = "select"


class SelectBest:
    """`min_agreement` / `min_reward`: reject below these (None = off; `cfg`: SelectConfig)."""

    def __init__(self, cfg=None):
        self.min_agreement = cfg.min_agreement if cfg else None
        self.min_reward = cfg.min_reward if cfg else None

    def __call__(self, batch: dict) -> dict:
        n = require("SelectBest", batch, ["responses", "response_answers", "response_rewards", "response_agreement"])
        responses, answers = column(batch, "responses"), column(batch, "response_answers")
        rewards = [list_or_none(v) for v in column(batch, "response_rewards")]
        agreement = [list_or_none(v) for v in column(batch, "response_agreement")]
        rejects = Rejects(batch, n)
        best = {"response": [None] * n, "final_answer": [None] * n, "reward": [None] * n, "agreement": [None] * n}
        for i in rejects.kept():
            if not responses[i]:
                rejects.reject(i, STAGE, "no candidate response")
                continue
            agree = agreement[i] or [0.0] * len(responses[i])
            key = rewards[i] if rewards[i] else agree
            j = max(range(len(responses[i])), key=lambda k: (key[k], -k))
            best["response"][i], best["final_answer"][i] = responses[i][j], answers[i][j]
            best["reward"][i] = rewards[i][j] if rewards[i] else None
            best["agreement"][i] = agree[j]
            if self.min_agreement is not None and agree[j] < self.min_agreement:
                rejects.reject(i, STAGE, f"answer agreement {agree[j]:.2f} below select.min_agreement "
                                         f"{self.min_agreement:g}")
            elif self.min_reward is not None and rewards[i] and rewards[i][j] < self.min_reward:
                rejects.reject(i, STAGE, f"reward {rewards[i][j]:.3f} below select.min_reward {self.min_reward:g}")
        out = {k: column(batch, k) for k in batch}
        out.update(**best, **rejects.columns())
        return out
