"""Selection: keep the best response per question — highest reward when a reward model scored them, otherwise
highest answer agreement; ties go to the earlier response.

  in: responses, response_answers, response_rewards, response_agreement
  out: + response, final_answer, reward, agreement
"""

from __future__ import annotations

from scalequest.stages.base import Rejects, column, list_or_none, require

STAGE = "select"


class SelectBest:
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
        out = {k: column(batch, k) for k in batch}
        out.update(**best, **rejects.columns())
        return out
