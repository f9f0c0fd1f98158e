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
VERDICT_CUE = "\n\nVerdict:"
_VERDICT_SAMPLING = Sampling(temperature=0.0, max_tokens=3)


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
            prompts = {i: self.formatter.user_prompt(judge_prompt(questions[i])) for i in rows}
            outs = dict(zip(rows, (o[0] for o in self.engine.generate(
                [prompts[i] for i in rows], self.sampling, [seeds[i] for i in rows]))))
            for i, g in outs.items():
                judgements[i], tokens[i] = g.text, g.num_tokens
                solvable[i] = parse_verdict(g.text) if g.finish_reason != "error" else None
            if self.cfg.force_verdict:
                self._force(prompts, outs, judgements, tokens, solvable)
            for i, g in outs.items():
                if g.finish_reason == "error":
                    rejects.reject(i, STAGE, f"judge error: {g.error}")
                elif solvable[i] is None:
                    cut = " (judge hit max_tokens)" if g.finish_reason == "length" else ""
                    rejects.reject(i, STAGE, f"unparseable verdict{cut}")
                elif not solvable[i]:
                    rejects.reject(i, STAGE, "judged unsolvable")
        out = {k: column(batch, k) for k in batch}
        out.update(solvable=solvable, solvability_judgement=judgements, judge_tokens=tokens, **rejects.columns())
        return out

    def _force(self, prompts, outs, judgements, tokens, solvable) -> None:
        """Continue verdict-less judgements with the verdict cue and parse again (in place)."""
        todo = [i for i, g in outs.items() if solvable[i] is None and g.finish_reason != "error"]
        if not todo:
            return
        cues = [prompts[i] + outs[i].text.rstrip() + VERDICT_CUE for i in todo]
        for i, cont in zip(todo, self.engine.generate(cues, _VERDICT_SAMPLING)):
            judgements[i] = outs[i].text.rstrip() + VERDICT_CUE + cont[0].text
            tokens[i] += cont[0].num_tokens
            solvable[i] = parse_verdict(judgements[i])
