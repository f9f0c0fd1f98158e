"""The stage plan, declared once: for every actor stage of the pipeline its name, stage class, batch size, actors,
calls per actor, CPUs/GPUs and the models it calls, read from the config. `build.build_dataset` wires it into Ray
Data, `build.cpu_reservation` sums it, `used_models` reads the models it names and `cost` bills them.

The task stages between them (AssignGenerators, DropEasiest, SelectBest, FinalizeRows, WriteShards) hold no state
and run as Ray Data tasks, which Ray Data scales by itself.

Test: tests/pipeline/test_plan.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalequest.stages.dedup import DropDuplicates
from scalequest.stages.difficulty import ScoreDifficulty
from scalequest.stages.generate_questions import GenerateQuestions
from scalequest.stages.language import FilterLanguage
from scalequest.stages.responses import GenerateResponses
from scalequest.stages.reward import ScoreResponses
from scalequest.stages.solvability import JudgeSolvability

CLIENT_CPUS = 0.1  # stage actors that only wait on an engine actor (and task stages)
LANGUAGE_CPUS = 0.5  # fastText runs in the stage actor itself
AGREEMENT_CPUS = 0.5  # answer agreement (math-verify) without a reward model
STAGE_MEMORY = 512 << 20  # what a stage actor holds (a tokenizer, fastText, batches); Ray Data warns when unset


@dataclass(frozen=True)
class StageSpec:
    """One actor stage. `batch_size` None = whole blocks (CPU-light stages never merge the blocks that the LLM
    stages split); `calls` = batches one actor runs at once in threads; `models` = engines it calls."""

    name: str
    cls: type
    batch_size: int | None
    actors: int = 1
    calls: int = 1
    num_cpus: float = CLIENT_CPUS
    num_gpus: float = 0.0
    models: tuple[str, ...] = ()


def stage_plan(cfg) -> list[StageSpec]:
    """The actor stages of a run of `cfg`, in pipeline order (solvability and difficulty only when enabled)."""
    g, s, d, r, w = cfg.generate, cfg.solvability, cfg.difficulty, cfg.responses, cfg.reward
    plan = [
        StageSpec("generate", GenerateQuestions, g.batch_size, g.concurrency, g.calls_per_actor,
                  models=tuple(dict.fromkeys(x.model for x in cfg.generators))),
        StageSpec("language", FilterLanguage, None, cfg.language.concurrency, num_cpus=LANGUAGE_CPUS),
        StageSpec("dedup", DropDuplicates, None, cfg.dedup.concurrency),
    ]
    if s.enabled:
        plan.append(StageSpec("solvability", JudgeSolvability, s.batch_size, s.concurrency, s.calls_per_actor,
                              models=(s.model,)))
    if d.model_path:
        plan.append(StageSpec("difficulty", ScoreDifficulty, d.batch_size, d.concurrency, num_cpus=d.num_cpus,
                              num_gpus=d.num_gpus))
    plan += [
        StageSpec("responses", GenerateResponses, r.batch_size, r.concurrency, r.calls_per_actor, models=(r.model,)),
        StageSpec("reward", ScoreResponses, w.batch_size, w.concurrency,
                  num_cpus=w.num_cpus if w.kind != "agreement" else AGREEMENT_CPUS,
                  num_gpus=w.num_gpus if w.kind != "agreement" else 0.0),
    ]
    return plan


def used_models(cfg) -> set[str]:
    """The model keys some stage of the plan calls (each gets its engine actors)."""
    return {m for spec in stage_plan(cfg) for m in spec.models}
