"""Responses: the solver writes N step-by-step answers per question ending in \\boxed{}; responses without a final
answer are dropped from the candidates, and a question with none left is rejected.

  in: question, seed    out: + responses, response_answers (the answered ones of N), response_tokens (all N)
"""

from __future__ import annotations

from scalequest.engines.base import Sampling
from scalequest.mathcheck import extract_boxed
from scalequest.stages.base import Rejects, column, require

STAGE = "responses"


class GenerateResponses:
    """`engine` generates N = cfg.n samples per question in one request; `formatter` applies the solver's template."""

    def __init__(self, cfg, engine, formatter):
        self.cfg, self.engine, self.formatter = cfg, engine, formatter
        self.sampling = Sampling.from_config(cfg.sampling, n=cfg.n)

    def prompt(self, question: str) -> str:
        return self.formatter.user_prompt(f"{question.strip()}\n{self.cfg.instruction}")

    def __call__(self, batch: dict) -> dict:
        n = require("GenerateResponses", batch, ["question", "seed"])
        questions, seeds = column(batch, "question"), column(batch, "seed")
        rejects = Rejects(batch, n)
        responses, answers, tokens = [[] for _ in range(n)], [[] for _ in range(n)], [0] * n
        rows = rejects.kept()
        if rows:
            outs = self.engine.generate([self.prompt(questions[i]) for i in rows], self.sampling,
                                        [seeds[i] for i in rows])
            for i, gens in zip(rows, outs):
                tokens[i] = sum(g.num_tokens for g in gens)
                for g in gens:
                    answer = extract_boxed(g.text) if g.finish_reason != "error" else None
                    if answer is not None:
                        responses[i].append(g.text)
                        answers[i].append(answer)
                if not responses[i]:
                    rejects.reject(i, STAGE, f"no response with a \\boxed{{}} answer (of {len(gens)})")
        out = {k: column(batch, k) for k in batch}
        out.update(responses=responses, response_answers=answers, response_tokens=tokens, **rejects.columns())
        return out
