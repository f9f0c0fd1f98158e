"""On-demand questions: draw candidates from the generators and pass them through the same stage objects the
batch pipeline uses (scalequest.stages), in rounds, until `n` passed or the candidate budget is spent.

Ray-free: engines and scorers are any objects with the stage interfaces (`DeploymentEngine` in Serve, an
in-process `VLLMEngine` in tests). Blocking; the ingress runs it in a worker thread.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field

from scalequest.engines.chat import ChatFormatter
from scalequest.stages.base import reason_kind
from scalequest.stages.dedup import DropDuplicates
from scalequest.stages.difficulty import DropEasiest, ScoreDifficulty
from scalequest.stages.generate_questions import AssignGenerators, GenerateQuestions, generator_prefixes
from scalequest.stages.language import FilterLanguage
from scalequest.stages.responses import GenerateResponses
from scalequest.stages.reward import ScoreResponses
from scalequest.stages.select import SelectBest
from scalequest.stages.solvability import JudgeSolvability

OVERSAMPLE = 2  # candidates drawn per missing question in a round


@dataclass
class QuestionPlan:
    """What one request asks for (already validated against the config and limits)."""

    n: int
    generators: list[str]
    language: bool
    dedup: bool
    solvability: bool
    difficulty_min: float | None = None
    difficulty_max: float | None = None
    with_solution: bool = False
    seed: int = field(default_factory=lambda: random.randrange(2**31))


class QuestionService:
    """Holds one instance of every stage, built from the config like `pipeline.build.build_dataset` does.

    `engines`: model key → Engine for every model a generator, the judge or the solver names;
    `reward_scorer`: `score_pairs` (None for reward.kind 'agreement'); `difficulty_scorer`: `score` (None = no
    difficulty model); `formatters`: model key → ChatFormatter.
    """

    def __init__(self, cfg, engines: dict, formatters: dict[str, ChatFormatter], reward_scorer=None,
                 difficulty_scorer=None, max_candidates: int = 64):
        self.cfg, self.max_candidates = cfg, max_candidates
        self.prefixes = generator_prefixes(cfg.generators, formatters)  # as the batch pipeline derives them
        self.generate = GenerateQuestions({g.name: engines[g.model] for g in cfg.generators}, self.prefixes,
                                          {g.name: g.sampling for g in cfg.generators})
        self.language = FilterLanguage(cfg.language.model_copy(update={"enabled": True}))
        s = cfg.solvability
        self.judge = JudgeSolvability(s.model_copy(update={"enabled": True}), engines[s.model],
                                      formatters[s.model])
        self.difficulty = ScoreDifficulty(cfg.difficulty, difficulty_scorer) if difficulty_scorer else None
        r = cfg.responses
        self.responses = GenerateResponses(r, engines[r.model], formatters[r.model])
        self.reward = ScoreResponses(cfg.reward, r.n, scorer=reward_scorer)
        self.select = SelectBest()
        self.models = {g.name: cfg.models[g.model].path for g in cfg.generators}

    def run(self, plan: QuestionPlan) -> dict:
        """{"questions": [...], "num_candidates", "num_passed", "seed",
        "rejected": {"stage: reason": count}}."""
        by_name = {g.name: g for g in self.cfg.generators}
        assign = AssignGenerators([by_name[name] for name in plan.generators], plan.seed)
        dedup = DropDuplicates(enabled=plan.dedup)  # a fresh seen-set per request
        kept, rejected, drawn = [], Counter(), 0
        while len(kept) < plan.n and drawn < self.max_candidates:
            k = min(self.max_candidates - drawn, (plan.n - len(kept)) * OVERSAMPLE)
            batch = self._filter(assign({"id": list(range(drawn, drawn + k))}), plan, dedup)
            drawn += k
            for row in _rows(batch):
                if row["reject_reason"] is None:
                    kept.append(row)
                else:
                    rejected[f"{row['reject_stage']}: {reason_kind(row['reject_reason'])}"] += 1
        questions = [self._item(row, plan.with_solution) for row in kept[: plan.n]]
        return dict(questions=questions, num_candidates=drawn, num_passed=len(kept), seed=plan.seed,
                    rejected=dict(rejected))

    def _filter(self, batch: dict, plan: QuestionPlan, dedup: DropDuplicates) -> dict:
        batch = self.generate(batch)
        if plan.language:
            batch = self.language(batch)
        batch = dedup(batch)
        if plan.solvability:
            batch = self.judge(batch)
        if self.difficulty is not None:
            batch = self.difficulty(batch)
            if plan.difficulty_min is not None:
                batch = DropEasiest(plan.difficulty_min)(batch)
            if plan.difficulty_max is not None:
                batch = DropEasiest(plan.difficulty_max, above=True)(batch)
        if plan.with_solution:
            batch = self.select(self.reward(self.responses(batch)))
        return batch

    def _item(self, row: dict, with_solution: bool) -> dict:
        scores = {k: row.get(k) for k in ("language", "language_score", "solvable", "difficulty")}
        item = dict(id=row["id"], question=row["question"], generator=row["generator"],
                    generator_model=self.models[row["generator"]], seed=row["seed"], scores=scores,
                    sampling=json.dumps({**_sampling(self.cfg, row["generator"]),
                                         "prefix": self.prefixes[row["generator"]][0]}))
        if with_solution:
            item["solution"] = {k: row.get(k) for k in ("response", "final_answer", "reward", "agreement")}
        return item


def _sampling(cfg, name: str) -> dict:
    return next(g.sampling.model_dump() for g in cfg.generators if g.name == name)


def _rows(batch: dict) -> list[dict]:
    names = list(batch)
    return [dict(zip(names, values)) for values in zip(*(batch[c] for c in names))]
