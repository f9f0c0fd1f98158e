"""Wire the stages into one Ray Data Dataset: candidate ids → generate (assigning generators) → language →
question type → decontam → dedup → near dup → solvability → [difficulty] → responses → reward → select →
finalize. Engines are started before (they may still be loading) and shared; the ids are all of
0..num_candidates-1 on a new run and the ones not yet on disk on a resumed one.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable

import ray
from ray.data import ActorPoolStrategy

from scalequest.engines.chat import ChatFormatter
from scalequest.pipeline.actors import RemoteBandGroups, RemoteSeenSet, StageChain, TimedStage
from scalequest.pipeline.plan import (
    CLIENT_CPUS,
    STAGE_MEMORY,
    StageSpec,
    operators,
    stage_kwargs,
    stage_plan,
    used_models,
)
from scalequest.schema import FUNNEL_STAGES
from scalequest.stages.difficulty import DropEasiest, SampleDifficulty
from scalequest.stages.finalize import FinalizeRows
from scalequest.stages.generate_questions import generator_prefixes as stage_prefixes
from scalequest.stages.select import SelectBest

log = logging.getLogger(__name__)
# the stages before any difficulty drop (the calibration pass runs these)
SCORED = FUNNEL_STAGES[: FUNNEL_STAGES.index("difficulty") + 1]


def formatter(cfg, name: str) -> ChatFormatter:
    """The chat formatter of model `name`, its user-turn frame learned here (the driver), so that the stage actors
    it is shipped to format by concatenation and never load the tokenizer."""
    m = cfg.models[name]
    return ChatFormatter(m.path, m.trust_remote_code).learn_frame()


def formatters(cfg) -> Callable[[str], ChatFormatter]:
    """model key → `formatter(cfg, key)`, each built once per call of this: one dataset build loads each model's
    tokenizer once, for the generator prefixes and every stage that formats prompts."""
    return functools.cache(lambda name: formatter(cfg, name))


def provenance(cfg, prefixes) -> tuple[dict, dict]:
    per_gen = {
        g.name: {"generator_model": cfg.written("models", g.model, "path"),
                 "sampling": json.dumps({**g.sampling.model_dump(), "prefix": prefixes[g.name][0]})}
        for g in cfg.generators
    }
    common = {
        "judge_model": cfg.written("models", cfg.solvability.model, "path") if cfg.solvability.enabled else None,
        "solver_model": cfg.written("models", cfg.responses.model, "path"),
        "reward_model": cfg.written("reward", "model_path") or "answer-agreement",
        "config_hash": cfg.config_hash(),
        "num_responses": cfg.responses.n,
    }
    return per_gen, common


class DatasetBuilder:
    """Adds timed stage operators to a Dataset; `ledger` collects their busy time."""

    def __init__(self, ledger):
        self.ledger = ledger

    def add(self, ds, name, stage_cls, kwargs, *, batch_size, concurrency=1, calls=1, num_cpus=CLIENT_CPUS,
            num_gpus=0.0, max_concurrency=None, resources=None):
        """`concurrency` actors of `stage_cls` (up to `max_concurrency` when set, on nodes that have `resources`);
        each runs up to `calls` batches at once in threads (LLM stages: a call mostly waits on the engine actor,
        so several per actor keep the engine's batch full)."""
        return self._actors(ds, stage_cls.__name__, TimedStage,
                            dict(stage_cls=stage_cls, kwargs=kwargs, name=name, ledger=self.ledger),
                            batch_size=batch_size, compute=actor_pool(concurrency, max_concurrency, calls),
                            num_cpus=num_cpus, num_gpus=num_gpus, resources=resources, memory=STAGE_MEMORY)

    def add_op(self, ds, op: tuple[StageSpec, ...], kwargs: dict):
        """One operator of `plan.operators` with the batch size, actors, calls and resources of the plan: a stage
        (`kwargs[name]()` builds its keywords), or stages folded into one `StageChain`, which holds the CPUs and
        memory of all of them."""
        spec = op[0]
        if len(op) == 1:
            return self.add(ds, spec.name, spec.cls, kwargs[spec.name](), batch_size=spec.batch_size,
                            concurrency=spec.actors, calls=spec.calls, num_cpus=spec.num_cpus, num_gpus=spec.num_gpus,
                            max_concurrency=spec.max_actors, resources=spec.resources)
        return self._actors(ds, "+".join(s.cls.__name__ for s in op), StageChain,
                            dict(members=[(s.cls, kwargs[s.name](), s.name) for s in op], ledger=self.ledger),
                            batch_size=None, compute=actor_pool(spec.actors, spec.max_actors, 1),
                            num_cpus=round(sum(s.num_cpus for s in op), 2), num_gpus=0.0, resources=spec.resources,
                            memory=STAGE_MEMORY * len(op))

    @staticmethod
    def _actors(ds, label, fn_cls, fn_kwargs, *, batch_size, compute, num_cpus, num_gpus, resources, memory):
        named = type(label, (fn_cls,), {})  # so Ray's progress shows the stage(s), not the wrapper
        return ds.map_batches(named, fn_constructor_kwargs=fn_kwargs, batch_size=batch_size, compute=compute,
                              num_cpus=num_cpus, num_gpus=num_gpus or None, memory=memory, batch_format="numpy",
                              **({"resources": dict(resources)} if resources else {}))


def actor_pool(size: int, max_size: int | None, calls: int) -> ActorPoolStrategy:
    """A fixed pool of `size` actors, or an autoscaling one from `size` to `max_size` (Ray Data adds actors while
    the stage's input queues and CPUs are free); each actor runs `calls` batches at once in threads."""
    # Ray Data's default lets an actor take 2x `calls` tasks: the extra ones queue behind its running batches
    # while another actor sits idle (the generate stage ran 5 of 8 batches at once, the rest after ~20 s)
    threads = dict(max_concurrent_calls_per_actor=calls, max_tasks_in_flight_per_actor=calls,
                   enable_true_multi_threading=True) if calls > 1 else {}
    if max_size is not None and max_size > size:
        return ActorPoolStrategy(min_size=size, max_size=max_size, **threads)
    return ActorPoolStrategy(size=size, **threads)


def cpu_reservation(cfg) -> dict[str, float]:
    """Ray CPUs the pipeline holds at once, by part (what `start_engines` and `build_dataset` ask for): the engine
    actors, the stage plan's actors (their least pools: autoscaled stages grow only into free CPUs), and one CPU
    for Ray Data's task stages and writes. The run cannot progress on fewer."""
    engines = sum(cfg.models[m].num_cpus * cfg.models[m].replicas for m in used_models(cfg))
    stages = sum(spec.num_cpus * spec.actors for spec in stage_plan(cfg))
    return {"engines": engines, "stage actors": round(stages, 2), "read/write tasks": 1.0}


def generator_prefixes(cfg, fmt: Callable[[str], ChatFormatter] | None = None) -> dict[str, tuple[str, list[str]]]:
    """Generator name → (pre-query prefix + hint, end-of-turn stops), from each generator model's tokenizer
    (`fmt`: model key → ChatFormatter, default `formatters(cfg)`)."""
    fmt = fmt or formatters(cfg)
    prefixes = stage_prefixes(cfg.generators, {g.model: fmt(g.model) for g in cfg.generators})
    for name, (prefix, stops) in prefixes.items():
        log.info("generator %s: prefix %r, stops %r", name, prefix, stops)
    return prefixes


def id_dataset(ids, block_rows: int):
    """A Dataset with one `id` column holding `ids` (a sorted int64 array), in blocks of `block_rows`: a block is
    also the unit that reaches disk, so a stop loses at most the blocks in flight.

    `from_blocks` reads each block's metadata in the driver. `from_arrow` runs a Ray task per table for it and waits:
    on a 2-core machine, with the engine loading, that task's worker took ~10 s to start, and the stage actors
    started that much later, after the engine was up (bench/README.md, session 18)."""
    import numpy as np
    import pyarrow as pa

    if len(ids) == 0:
        raise ValueError("no candidate ids to run")
    chunks = np.array_split(ids, max(1, -(-len(ids) // block_rows)))
    return ray.data.from_blocks([pa.table({"id": c}) for c in chunks])


def question_dataset(cfg, engines: dict, ledger, prefixes: dict | None = None, ids=None):
    """The front of the pipeline: ids (default 0..num_candidates-1) → GenerateQuestions, which assigns generators
    (one row per candidate, with its question or reject reason). `bench/generation_throughput.py` times this."""
    fmt = formatters(cfg)
    return _front(cfg, engines, ledger, prefixes or generator_prefixes(cfg, fmt), ids, None, ("generate",), fmt)


def scored_dataset(cfg, engines: dict, ledger, ids=None, stores: dict | None = None,
                   prefixes: dict | None = None, fmt: Callable[[str], ChatFormatter] | None = None):
    """ids → generate → language → question type → [decontam] → dedup → [near dup] → [solvability] →
    [difficulty score]: every stage before any row is dropped by difficulty (the calibration pass runs exactly
    this). `stores`: the run's dedup seen set and near-dup index (`new_stores`; new, empty ones by default)."""
    fmt = fmt or formatters(cfg)
    return _front(cfg, engines, ledger, prefixes or generator_prefixes(cfg, fmt), ids, stores, SCORED, fmt)


def _front(cfg, engines, ledger, prefixes, ids, stores, names, fmt):
    import numpy as np

    b = DatasetBuilder(ledger)
    gen_batch = cfg.generate.batch_size
    ds = id_dataset(np.arange(cfg.num_candidates, dtype=np.int64) if ids is None else ids, gen_batch)
    if "dedup" in names:
        stores = stores or new_stores(cfg)
    kwargs = stage_kwargs(cfg, engines, prefixes, fmt, stores)
    for op in operators([spec for spec in stage_plan(cfg) if spec.name in names]):
        ds = b.add_op(ds, op, kwargs)
    return ds


def new_stores(cfg) -> dict:
    """The run's shared state: "dedup", the seen set (`dedup.store_actors` actors), and "near_dup", the LSH
    index (`near_dup.store_actors` actors); each only when its stage is on."""
    stores = {}
    if cfg.dedup.enabled:
        stores["dedup"] = RemoteSeenSet.start(cfg.dedup.store_actors)
    if cfg.near_dup.enabled:
        stores["near_dup"] = RemoteBandGroups.start(cfg.near_dup)
    return stores


def build_dataset(cfg, engines: dict, ledger, ids=None, stores: dict | None = None,
                  calibration: dict | None = None):
    """The lazy, streaming Dataset of finalized rows for `ids` (default: all candidates), wired from the stage
    plan. `calibration`: per generator, the difficulty below which questions are dropped ("thresholds") and the
    difficulty bins' keep probabilities ("acceptance") (`scalequest.pipeline.calibrate`)."""
    b = DatasetBuilder(ledger)
    fmt = formatters(cfg)
    prefixes = generator_prefixes(cfg, fmt)
    stores = stores or new_stores(cfg)
    ds = scored_dataset(cfg, engines, ledger, ids, stores, prefixes, fmt)
    calibration = calibration or {}
    if cfg.difficulty.model_path:
        ds = ds.map_batches(DropEasiest(calibration.get("thresholds") or {}), batch_size=None, batch_format="numpy",
                            num_cpus=CLIENT_CPUS)
    if any((calibration.get("acceptance") or {}).values()):
        d = cfg.difficulty
        ds = ds.map_batches(SampleDifficulty(calibration["acceptance"], d.bin_edges, d.names, cfg.seed),
                            batch_size=None, batch_format="numpy", num_cpus=CLIENT_CPUS)
    kwargs = stage_kwargs(cfg, engines, prefixes, fmt, stores)
    for op in operators([spec for spec in stage_plan(cfg) if spec.name not in SCORED]):
        ds = b.add_op(ds, op, kwargs)
    ds = ds.map_batches(SelectBest(cfg.select), batch_size=None, batch_format="numpy", num_cpus=CLIENT_CPUS)
    per_gen, common = provenance(cfg, prefixes)
    return ds.map_batches(FinalizeRows(per_gen, common), batch_size=None, num_cpus=CLIENT_CPUS, batch_format="numpy")
