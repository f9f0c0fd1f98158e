"""Sampling answers from a solver through the engine interface (`engines.base.Engine`): each question in the
solver's user turn with the step-by-step + \\boxed{} instruction, k samples per question, seeded per question.
Evaluation and the difficulty scorer's fail-rate labels both use it.

  solve(questions, engine, formatter, k, sampling, instruction, seeds=None, batch_size=64, progress=None)
      -> per question, k answer texts (None where the engine reported an error)

Test: tests/evaluation/test_eval.py (tiny random model), tests/train/test_difficulty.py (fail-rate labels).
"""

from __future__ import annotations

from collections.abc import Callable

from scalequest.engines.base import Sampling


def solve(questions: list[str], engine, formatter, k: int, sampling: Sampling, instruction: str, seeds=None,
          batch_size: int = 64, progress: Callable[[int, int], None] | None = None,
          force_answer: bool = False) -> list[list[str | None]]:
    """k answers per question; `progress(done, total)` is called after each engine request. `force_answer`: an
    answer without \\boxed{} is continued with the answer cue (`stages.responses.force_answers`), as the pipeline's
    solver does with responses.force_answer."""
    from scalequest.stages.responses import force_answers, solver_prompt

    params = Sampling(sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.stop, k)
    out: list[list[str | None]] = []
    for start in range(0, len(questions), batch_size):
        chunk = questions[start: start + batch_size]
        prompts = [solver_prompt(formatter, q, instruction) for q in chunk]
        gens = engine.generate(prompts, params, None if seeds is None else list(seeds[start: start + batch_size]))
        texts = [[None if g.finish_reason == "error" else g.text for g in per] for per in gens]
        if force_answer:
            done = [(p, i, j) for p, (i, per) in zip(prompts, enumerate(texts)) for j, t in enumerate(per) if t]
            forced, _ = force_answers(engine, [p for p, _, _ in done], [texts[i][j] for _, i, j in done])
            for (_, i, j), text in zip(done, forced):
                texts[i][j] = text
        out += texts
        if progress is not None:
            progress(len(out), len(questions))
    return out


class SolveAndGrade:
    """The evaluation as a column-batch stage (Ray-free; `run_eval` wires it into Ray Data as an actor pool):
    in `question`, `gold` ('' = none), `seed`; out the same plus `answers` (k texts, None where the engine
    failed), `extracted` (each answer's last \\boxed{}), `correct` (math-verify against the gold, per answer) and
    `majority` (the majority answer is right; with k = 1 the one answer is). `engine`: any `Engine` (the
    pipeline's `RemoteEngine` in a run); `model_path` / `trust_remote_code` build the chat formatter."""

    def __init__(self, engine, model_path: str, trust_remote_code: bool, k: int, sampling: Sampling,
                 instruction: str, force_answer: bool = False):
        from scalequest.engines.chat import ChatFormatter

        self.engine, self.k, self.sampling = engine, k, sampling
        self.instruction, self.force_answer = instruction, force_answer
        self.formatter = ChatFormatter(model_path, trust_remote_code)

    def __call__(self, batch: dict) -> dict:
        from scalequest.evaluation.metrics import grade, majority_correct
        from scalequest.mathcheck import extract_boxed
        from scalequest.stages.base import column, passthrough

        questions, golds = column(batch, "question"), [g or None for g in column(batch, "gold")]
        texts = solve(questions, self.engine, self.formatter, self.k, self.sampling, self.instruction,
                      [int(s) for s in column(batch, "seed")], batch_size=len(questions),
                      force_answer=self.force_answer)
        correct = [grade(answers, gold) for answers, gold in zip(texts, golds)]
        return {**passthrough(batch), "answers": texts,
                "extracted": [[extract_boxed(t) for t in answers] for answers in texts], "correct": correct,
                "majority": [majority_correct(answers, gold) if self.k > 1 else ok[0]
                             for answers, gold, ok in zip(texts, golds, correct)]}
