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
from scalequest.pipeline.plan import stage_kwargs, stage_plan
from scalequest.stages.base import reason_kind
from scalequest.stages.dedup import DropDuplicates
from scalequest.stages.difficulty import DropEasiest
from scalequest.stages.generate_questions import AssignGenerators, generator_prefixes
from scalequest.stages.select import SelectBest

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
    num_responses: int | None = None  # solver responses per question (None: the config's responses.n)
    seed: int = field(default_factory=lambda: random.randrange(2**31))


class QuestionService:
    """Holds one instance of every stage of the batch pipeline's stage plan (`pipeline.plan`), built with the
    same keywords; a request turns the filters on or off.

    `engines`: model key → Engine for every model a generator, the judge or the solver names;
    `reward_scorer`: `score_pairs` (None: for reward.kind 'agreement', else the stage loads reward.model_path
    itself); `difficulty_scorer`: `score` (None: the stage loads difficulty.model_path itself, when one is set);
    `formatters`: model key → ChatFormatter.
    """

    SOLUTION = ("responses", "reward")  # stages that run only when a request asks for the solution
    PER_REQUEST = ("dedup", "near_dup")  # a fresh one per request (its own seen set / LSH index)

    def __init__(self, cfg, engines: dict, formatters: dict[str, ChatFormatter], reward_scorer=None,
                 difficulty_scorer=None, max_candidates: int = 64):
        self.cfg, self.max_candidates = cfg, max_candidates
        self.prefixes = generator_prefixes(cfg.generators, formatters)  # as the batch pipeline derives them
        # every filter a request may ask for, whatever the batch run's switches say
        full = cfg.model_copy(update={
            "language": cfg.language.model_copy(update={"enabled": True}),
            "solvability": cfg.solvability.model_copy(update={"enabled": True})})
        kwargs = stage_kwargs(full, engines, self.prefixes, formatters.__getitem__,
                              scorers={"difficulty": difficulty_scorer, "reward": reward_scorer})
        specs = stage_plan(full)
        self.plan = [spec.name for spec in specs]
        self.per_request = {spec.name: (spec.cls, kwargs[spec.name]()) for spec in specs
                            if spec.name in self.PER_REQUEST}
        self.stages = {spec.name: spec.cls(**kwargs[spec.name]()) for spec in specs
                       if spec.name not in self.PER_REQUEST}
        self.select = SelectBest(cfg.select)
        self.kwargs, self.classes = kwargs, {spec.name: spec.cls for spec in specs}
        self.by_n = {cfg.responses.n: (self.stages["responses"], self.stages["reward"])}  # solution stages by N
        self.models = {g.name: cfg.models[g.model].path for g in cfg.generators}

    def run(self, plan: QuestionPlan) -> dict:
        """{"questions": [...], "num_candidates", "num_passed", "seed",
        "rejected": {"stage: reason": count}}."""
        by_name = {g.name: g for g in self.cfg.generators}
        assign = AssignGenerators([by_name[name] for name in plan.generators], plan.seed)
        fresh = {name: cls(**({**kwargs, "enabled": plan.dedup} if cls is DropDuplicates else kwargs))
                 for name, (cls, kwargs) in self.per_request.items()}  # near_dup is skipped when dedup is off
        kept, rejected, drawn = [], Counter(), 0
        while len(kept) < plan.n and drawn < self.max_candidates:
            k = min(self.max_candidates - drawn, (plan.n - len(kept)) * OVERSAMPLE)
            batch = self._filter(assign({"id": list(range(drawn, drawn + k))}), plan, fresh)
            drawn += k
            for row in _rows(batch):
                if row["reject_reason"] is None:
                    kept.append(row)
                else:
                    rejected[f"{row['reject_stage']}: {reason_kind(row['reject_reason'])}"] += 1
        questions = [self._item(row, plan.with_solution) for row in kept[: plan.n]]
        return dict(questions=questions, num_candidates=drawn, num_passed=len(kept), seed=plan.seed,
                    rejected=dict(rejected))

    def _filter(self, batch: dict, plan: QuestionPlan, fresh: dict) -> dict:
        """The plan's stages in its order, those the request switched off skipped; `fresh`: this request's
        dedup and near-dup stages."""
        wanted = {"language": plan.language, "solvability": plan.solvability, "dedup": True,
                  "near_dup": plan.dedup, **dict.fromkeys(self.SOLUTION, plan.with_solution)}
        stages = {**self.stages, **fresh}
        if plan.with_solution:
            stages.update(zip(self.SOLUTION, self._solution_stages(plan.num_responses or self.cfg.responses.n)))
        for name in self.plan:
            if not wanted.get(name, True):
                continue
            batch = stages[name](batch)
            if name == "difficulty":
                if plan.difficulty_min is not None:
                    batch = DropEasiest(plan.difficulty_min)(batch)
                if plan.difficulty_max is not None:
                    batch = DropEasiest(plan.difficulty_max, above=True)(batch)
        return self.select(batch) if plan.with_solution else batch

    def _solution_stages(self, n: int) -> tuple:
        """The responses and reward stages for `n` responses per question (built once per N; the plan's own
        keywords with N changed)."""
        if n not in self.by_n:
            r, w = self.kwargs["responses"](), self.kwargs["reward"]()
            r["cfg"] = r["cfg"].model_copy(update={"n": n})
            self.by_n[n] = (self.classes["responses"](**r), self.classes["reward"](**{**w, "num_samples": n}))
        return self.by_n[n]

    def _item(self, row: dict, with_solution: bool) -> dict:
        scores = {k: row.get(k) for k in ("language", "language_score", "solvable", "difficulty")}
        item = dict(id=row["id"], question=row["question"], generator=row["generator"],
                    generator_model=self.models[row["generator"]], seed=row["seed"], scores=scores,
                    sampling=json.dumps({**_sampling(self.cfg, row["generator"]),
                                         "prefix": self.prefixes[row["generator"]][0]}))
        if with_solution:
            item["solution"] = {k: row.get(k) for k in ("response", "final_answer", "reward", "agreement")}
            item["solution"]["num_responses"] = len(row.get("responses") or [])
        return item


def _sampling(cfg, name: str) -> dict:
    return next(g.sampling.model_dump() for g in cfg.generators if g.name == name)


def _rows(batch: dict) -> list[dict]:
    names = list(batch)
    return [dict(zip(names, values)) for values in zip(*(batch[c] for c in names))]
