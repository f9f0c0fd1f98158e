"""The stage plan, declared once: for every actor stage of the pipeline its name, stage class, batch size, actors
(and their autoscaling bound), calls per actor, CPUs/GPUs and the models it calls, read from the config, and
`stage_kwargs`, what each stage is built with. `build.build_dataset` wires it into Ray Data, the Serve question
service (`serve.questions`) builds one of each stage from it, `build.cpu_reservation` sums it, `used_models` reads
the models it names (preflight checks them, `cost` bills them). Ray-free: Serve imports it.

The task stages between them (DropEasiest, SampleDifficulty, SelectBest, FinalizeRows, WriteShards) hold no state
and run as Ray Data tasks, which Ray Data scales by itself. Generator assignment runs inside the generate actors
(`GenerateQuestions(assign=…)`): a Ray Data task per block for two columns cost more CPU than it did work.

Test: tests/pipeline/test_plan.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scalequest.mathcheck.benchmarks import load_benchmarks
from scalequest.stages.decontam import DropContaminated
from scalequest.stages.dedup import DropDuplicates
from scalequest.stages.difficulty import ScoreDifficulty
from scalequest.stages.generate_questions import AssignGenerators, GenerateQuestions
from scalequest.stages.language import FilterLanguage
from scalequest.stages.near_dup import DropNearDuplicates
from scalequest.stages.question_type import FilterQuestionType
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
    stages split); `actors` = the pool's size, or its least size when `max_actors` is set (Ray Data then grows
    it while work queues); `calls` = batches one actor runs at once in threads; `models` = engines it calls;
    `loads` = (config key, path) of the models its actors load themselves (scorers); `resources` = custom Ray
    resources each actor needs (`<stage>.resources`: node placement)."""

    name: str
    cls: type
    batch_size: int | None
    actors: int = 1
    max_actors: int | None = None
    calls: int = 1
    num_cpus: float = CLIENT_CPUS
    num_gpus: float = 0.0
    models: tuple[str, ...] = ()
    loads: tuple[tuple[str, str], ...] = ()  # (config key, path) of models the stage actor loads itself
    resources: tuple[tuple[str, float], ...] = ()  # custom Ray resources per actor (node placement)


def stage_plan(cfg) -> list[StageSpec]:
    """The actor stages of a run of `cfg`, in pipeline order (decontam, near_dup, solvability and difficulty only
    when enabled)."""
    g, s, d, r, w = cfg.generate, cfg.solvability, cfg.difficulty, cfg.responses, cfg.reward
    plan = [
        StageSpec("generate", GenerateQuestions, g.batch_size, *_pool(g), g.calls_per_actor,
                  models=tuple(dict.fromkeys(x.model for x in cfg.generators))),
        StageSpec("language", FilterLanguage, None, *_pool(cfg.language), num_cpus=LANGUAGE_CPUS),
        StageSpec("question_type", FilterQuestionType, None, *_pool(cfg.question_type)),
    ]
    if cfg.decontam.enabled and cfg.decontam.benchmarks:
        plan.append(StageSpec("decontam", DropContaminated, None, *_pool(cfg.decontam)))  # ~30K lookups/s
    plan.append(StageSpec("dedup", DropDuplicates, None, *_pool(cfg.dedup)))
    if cfg.near_dup.enabled:
        plan.append(StageSpec("near_dup", DropNearDuplicates, None, *_pool(cfg.near_dup)))  # ~13K/s
    if s.enabled:
        plan.append(StageSpec("solvability", JudgeSolvability, s.batch_size, *_pool(s), s.calls_per_actor,
                              models=(s.model,)))
    if d.model_path:
        plan.append(StageSpec("difficulty", ScoreDifficulty, d.batch_size, *_pool(d), num_cpus=d.num_cpus,
                              num_gpus=d.num_gpus, loads=(("difficulty.model_path", d.model_path),)))
    plan += [
        StageSpec("responses", GenerateResponses, r.batch_size, *_pool(r), r.calls_per_actor, models=(r.model,)),
        StageSpec("reward", ScoreResponses, w.batch_size, *_pool(w),
                  num_cpus=w.num_cpus if w.kind != "agreement" else AGREEMENT_CPUS,
                  num_gpus=w.num_gpus if w.kind != "agreement" else 0.0,
                  loads=(("reward.model_path", w.model_path),) if w.kind != "agreement" else ()),
    ]
    return _placed(plan, cfg)


def operators(plan: list[StageSpec]) -> list[tuple[StageSpec, ...]]:
    """The plan as Ray Data operators, in order: consecutive stages that take whole blocks, call no engine, load
    no model and have the same pool (actors, autoscaling bound, placement) run as one operator, each of its actors
    running them one after the other on a block (`actors.StageChain`); every other stage is an operator of its own.
    A separate operator per filter costs a worker process and a trip through the object store per block, which on
    a small machine is more CPU than the filter's work (the tiny config's five filters ran in five actors of
    ~1 CPU-s each per run). Give a stage its own `concurrency` to keep it in its own actors."""
    ops: list[tuple[StageSpec, ...]] = []
    for spec in plan:
        last = ops[-1][-1] if ops else None
        if last is not None and _foldable(last) and _foldable(spec) and _pool_key(last) == _pool_key(spec):
            ops[-1] = (*ops[-1], spec)
        else:
            ops.append((spec,))
    return ops


def _foldable(spec: StageSpec) -> bool:
    return spec.batch_size is None and spec.calls == 1 and not (spec.models or spec.loads or spec.num_gpus)


def _pool_key(spec: StageSpec) -> tuple:
    return spec.actors, spec.max_actors, spec.resources


def _placed(plan: list[StageSpec], cfg) -> list[StageSpec]:
    """Each spec with its stage config's `resources` (node placement)."""
    from dataclasses import replace

    return [replace(spec, resources=tuple(sorted(getattr(cfg, spec.name).resources.items()))) for spec in plan]


def _pool(stage_cfg) -> tuple[int, int | None]:
    return stage_cfg.concurrency, stage_cfg.max_concurrency


def stage_kwargs(cfg, engines: dict, prefixes: dict, formatter: Callable, stores: dict | None = None,
                 scorers: dict | None = None) -> dict[str, Callable[[], dict]]:
    """Stage name → a function making that stage's constructor keywords. `engines`: model key → engine (the
    pipeline's shared clients, or Serve's deployment handles); `prefixes`: generator name → (prefix, stops);
    `formatter(model_key)` → ChatFormatter; `stores`: the run's shared state by stage, "dedup" (seen set) and
    "near_dup" (LSH index) (missing = the stage keeps its own); `scorers`:
    ready scorers for "difficulty" / "reward" (missing = the stage loads its own)."""
    s, r, scorers, stores = cfg.solvability, cfg.responses, scorers or {}, stores or {}
    return {
        "generate": lambda: dict(engines={g.name: engines[g.model] for g in cfg.generators}, prefixes=prefixes,
                                 samplings={g.name: g.sampling for g in cfg.generators},
                                 assign=AssignGenerators(cfg.generators, cfg.seed)),
        "language": lambda: dict(cfg=cfg.language),
        "question_type": lambda: dict(cfg=cfg.question_type),
        "decontam": lambda: dict(cfg=cfg.decontam, benchmarks=load_benchmarks(cfg.decontam.benchmarks)),
        "dedup": lambda: dict(enabled=cfg.dedup.enabled, store=stores.get("dedup")),
        "near_dup": lambda: dict(cfg=cfg.near_dup, index=stores.get("near_dup")),
        "solvability": lambda: dict(cfg=s, engine=engines[s.model], formatter=formatter(s.model)),
        "difficulty": lambda: dict(cfg=cfg.difficulty, scorer=scorers.get("difficulty")),
        "responses": lambda: dict(cfg=r, engine=engines[r.model], formatter=formatter(r.model)),
        "reward": lambda: dict(cfg=cfg.reward, num_samples=r.n, scorer=scorers.get("reward")),
    }


def engine_bundles(m) -> list[dict] | None:
    """The placement-group bundles one engine replica of ModelConfig `m` reserves (pipeline engine actor or Serve
    LLM replica): with tensor parallelism on GPUs, one bundle per tensor-parallel worker, one GPU each, the first
    also holding the engine's CPUs and custom resources, packed on one node (vLLM's Ray executor starts its
    workers in them). None = a plain actor reservation (num_cpus, num_gpus, resources)."""
    if m.tensor_parallel_size <= 1 or not m.num_gpus:
        return None
    return [{"CPU": m.num_cpus, "GPU": 1.0, **m.resources}] + [{"GPU": 1.0}] * (m.tensor_parallel_size - 1)


def used_models(cfg) -> set[str]:
    """The model keys some stage of the plan calls (each gets its engine actors; preflight checks their paths)."""
    return {m for spec in stage_plan(cfg) for m in spec.models}
