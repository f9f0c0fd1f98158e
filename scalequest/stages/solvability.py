"""Solvability filter: a judge LLM reasons about (1) is it a math problem and (2) is it solvable from its own
conditions, and ends with `Verdict: Yes|No`. Only the final verdict counts; an unparseable verdict is a reject with
that reason, never a crash (the original scripts kept any output containing "yes" anywhere).

  in: question, seed    out: + solvable, solvability_judgement, judge_tokens
"""

from __future__ import annotations

from scalequest.engines.base import Sampling
from scalequest.mathcheck import parse_verdict
from scalequest.prompts import judge_prompt
from scalequest.stages.base import Rejects, column, require

STAGE = "solvability"


class JudgeSolvability:
    """`engine` generates; `formatter.user_prompt(text)` wraps the judge prompt in the judge's chat template."""

    def __init__(self, cfg, engine, formatter):
        self.cfg, self.engine, self.formatter = cfg, engine, formatter
        self.sampling = Sampling.from_config(cfg.sampling)

    def __call__(self, batch: dict) -> dict:
        n = require("JudgeSolvability", batch, ["question", "seed"])
        questions, seeds = column(batch, "question"), column(batch, "seed")
        rejects = Rejects(batch, n)
        solvable, judgements, tokens = [None] * n, [None] * n, [0] * n
        rows = rejects.kept() if self.cfg.enabled else []
        if rows:
            prompts = [self.formatter.user_prompt(judge_prompt(questions[i])) for i in rows]
            outs = self.engine.generate(prompts, self.sampling, [seeds[i] for i in rows])
            for i, out in zip(rows, outs):
                g = out[0]
                judgements[i], tokens[i] = g.text, g.num_tokens
                verdict = parse_verdict(g.text) if g.finish_reason != "error" else None
                solvable[i] = verdict
                if g.finish_reason == "error":
                    rejects.reject(i, STAGE, f"judge error: {g.error}")
                elif verdict is None:
                    cut = " (judge hit max_tokens)" if g.finish_reason == "length" else ""
                    rejects.reject(i, STAGE, f"unparseable verdict{cut}")
                elif not verdict:
                    rejects.reject(i, STAGE, "judged unsolvable")
        out = {k: column(batch, k) for k in batch}
        out.update(solvable=solvable, solvability_judgement=judgements, judge_tokens=tokens, **rejects.columns())
        return out
