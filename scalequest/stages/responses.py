"""Responses: the solver writes N step-by-step answers per question ending in \\boxed{}; responses without a final
answer are dropped from the candidates, and a question with none left is rejected.

  in: question, seed    out: + responses, response_answers (the answered ones of N), response_tokens (all N)
"""

from __future__ import annotations

from scalequest.engines.base import Sampling
from scalequest.mathcheck import extract_boxed
from scalequest.stages.base import Rejects, column, require

STAGE = "responses"
ANSWER_CUE = "\n\nThe final answer is $\\boxed{"
_ANSWER_SAMPLING = Sampling(temperature=0.0, max_tokens=24, stop=("$",))


def solver_prompt(formatter, question: str, instruction: str) -> str:
    """The solver's prompt: `question` and the step-by-step + \\boxed{} `instruction` in one user turn. The responses
    stage, `scalequest eval` and solver SFT's training rows all ask with it, so a fine-tuned solver is evaluated and
    used on exactly the prompt it was trained on."""
    return formatter.user_prompt(f"{question.strip()}\n{instruction}")


class GenerateResponses:
    """`engine` generates N = cfg.n samples per question in one request; `formatter` applies the solver's template."""

    def __init__(self, cfg, engine, formatter):
        self.cfg, self.engine, self.formatter = cfg, engine, formatter
        self.sampling = Sampling.from_config(cfg.sampling, n=cfg.n)

    def prompt(self, question: str) -> str:
        return solver_prompt(self.formatter, question, self.cfg.instruction)

    def __call__(self, batch: dict) -> dict:
        n = require("GenerateResponses", batch, ["question", "seed"])
        questions, seeds = column(batch, "question"), column(batch, "seed")
        rejects = Rejects(batch, n)
        responses, answers, tokens = [[] for _ in range(n)], [[] for _ in range(n)], [0] * n
        rows = rejects.kept()
        if rows:
            outs = self.engine.generate([self.prompt(questions[i]) for i in rows], self.sampling,
                                        [seeds[i] for i in rows])
            texts = {(i, k): g.text for i, gens in zip(rows, outs) for k, g in enumerate(gens)
                     if g.finish_reason != "error"}
            forced_tokens = self._force(questions, texts) if self.cfg.force_answer else {}
            for i, gens in zip(rows, outs):
                tokens[i] = sum(g.num_tokens for g in gens) + forced_tokens.get(i, 0)
                for k in range(len(gens)):
                    answer = extract_boxed(texts[(i, k)]) if (i, k) in texts else None
                    if answer is not None:
                        responses[i].append(texts[(i, k)])
                        answers[i].append(answer)
                if not responses[i]:
                    rejects.reject(i, STAGE, f"no response with a \\boxed{{}} answer (of {len(gens)})")
        out = {k: column(batch, k) for k in batch}
        out.update(responses=responses, response_answers=answers, response_tokens=tokens, **rejects.columns())
        return out

    def _force(self, questions, texts: dict) -> dict:
        """Continue answer-less responses with the answer cue (in place); returns extra tokens per question row."""
        keys = list(texts)
        prompts = [self.prompt(questions[i]) for i, _ in keys]
        forced, counts = force_answers(self.engine, prompts, [texts[k] for k in keys])
        extra: dict[int, int] = {}
        for (i, k), text, count in zip(keys, forced, counts):
            texts[(i, k)] = text
            if count:
                extra[i] = extra.get(i, 0) + count
        return extra


def force_answers(engine, prompts: list[str], texts: list[str]) -> tuple[list[str], list[int]]:
    """Answer forcing (for small solvers that ignore the \\boxed{} instruction): each text without a box is continued
    after its prompt with 'The final answer is $\\boxed{' and keeps what the model writes there (greedy, 24 tokens).
    Returns the texts (boxed ones unchanged) and the extra tokens per text. The pipeline's responses stage and
    `scalequest eval` (eval.force_answer) use it."""
    todo = [j for j, text in enumerate(texts) if extract_boxed(text) is None]
    texts, extra = list(texts), [0] * len(texts)
    if not todo:
        return texts, extra
    cues = [prompts[j] + texts[j].rstrip() + ANSWER_CUE for j in todo]
    for j, cont in zip(todo, engine.generate(cues, _ANSWER_SAMPLING)):
        texts[j] = texts[j].rstrip() + ANSWER_CUE + cont[0].text + "$"
        extra[j] = cont[0].num_tokens
    return texts, extra
