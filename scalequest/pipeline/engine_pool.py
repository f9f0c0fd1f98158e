"""One vLLM engine per model, shared by every stage that names it: each engine is an async Ray actor, and stage
actors hold a picklable `RemoteEngine` client. Concurrent requests from all stages and batches join one continuous
batch inside vLLM (that is why this is not `ray.data.llm`: it keeps only the first of `n` outputs and builds one
engine per processor).
"""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger(__name__)


# Ray starts worker processes at niceness 15. The engine actor (and the vLLM processes it spawns) is the hot path
# of every run: at 15 it would lose the CPU to anything at 0 and share it evenly with CPU-bound stage tasks
# (fastText, math-verify) on a saturated node, starving vLLM's scheduler loop. So it runs at niceness 0, like a
# bare vLLM. Merged with the job's runtime_env env_vars. (On the 2-core benchmark, where the stages are light,
# this changed nothing measurable: bench/README.md.)
ENGINE_RUNTIME_ENV = {"env_vars": {"RAY_worker_niceness": "0"}}


@ray.remote
class EngineActor:
    """Hosts an `AsyncVLLMEngine` for one `ModelConfig` (passed as a dict)."""

    def __init__(self, model_cfg: dict):
        from scalequest.config import ModelConfig
        from scalequest.engines.vllm_engine import AsyncVLLMEngine

        self.engine = AsyncVLLMEngine(ModelConfig(**model_cfg))

    def ready(self) -> dict:
        """Blocks until the engine is loaded; says where it runs (pid, niceness)."""
        return {"pid": os.getpid(), "niceness": os.nice(0)}

    async def generate(self, prompts, seeds=None, *, sampling):
        return await self.engine.agenerate(prompts, sampling, seeds)


class RemoteEngine:
    """The `Engine` interface over one or more `EngineActor` replicas (prompts are split evenly across them)."""

    def __init__(self, actors: list, model_path: str):
        self.actors, self.model_path = actors, model_path

    def generate(self, prompts, sampling, seeds=None):
        prompts = list(prompts)
        seeds = list(seeds) if seeds is not None else [None] * len(prompts)
        k = len(self.actors)
        parts = [(prompts[r::k], seeds[r::k]) for r in range(k)]
        used = [r for r in range(k) if parts[r][0]]
        results = ray.get([self.actors[r].generate.remote(*parts[r], sampling=sampling) for r in used])
        merged = [None] * len(prompts)
        for r, res in zip(used, results):
            merged[r::k] = res
        return merged


def start_engines(models: dict, used: set[str]) -> dict[str, RemoteEngine]:
    """Start the engine actors for the model names in `used`; block until all are loaded."""
    clients = {}
    for name in sorted(used):
        cfg = models[name]
        opts = dict(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, name=None, max_concurrency=1000,
                    runtime_env=ENGINE_RUNTIME_ENV)
        actors = [EngineActor.options(**opts).remote(cfg.model_dump()) for _ in range(cfg.replicas)]
        clients[name] = RemoteEngine(actors, cfg.path)
    log.info("loading %d engine(s): %s", len(clients), ", ".join(clients))
    ray.get([a.ready.remote() for c in clients.values() for a in c.actors])
    return clients


def stop_engines(clients: dict[str, RemoteEngine]) -> None:
    for c in clients.values():
        for a in c.actors:
            ray.kill(a)
