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
