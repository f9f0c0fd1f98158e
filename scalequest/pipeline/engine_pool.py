"""One vLLM engine per model, shared by every stage that names it: each engine is an async Ray actor, and stage
actors hold a picklable `RemoteEngine` client. Concurrent requests from all stages and batches join one continuous
batch inside vLLM (that is why this is not `ray.data.llm`: it keeps only the first of `n` outputs and builds one
engine per processor).

When vLLM dies inside an engine actor (its engine-core or worker process killed or crashed), the actor exits and
Ray restarts it (`models.<name>.max_restarts`) and re-runs the calls it had in flight on the new engine: rows are
seeded per id, so the retried batches produce the same rows. Past the restarts, `RemoteEngine.generate` raises
`EngineUnavailable` naming the model and the key. Test: tests/pipeline/test_actors.py.
"""

from __future__ import annotations

import logging
import os
import re
import time

import ray

from scalequest.errors import EngineUnavailable
from scalequest.runtime import ENGINE_RUNTIME_ENV, use_all_cpus  # niceness 0 for vLLM (Ray's workers: 15)

log = logging.getLogger(__name__)


@ray.remote
class EngineActor:
    """Hosts an `AsyncVLLMEngine` for one `ModelConfig` (passed as a dict)."""

    def __init__(self, model_cfg: dict):
        from scalequest.config import ModelConfig
        from scalequest.engines.vllm_engine import AsyncVLLMEngine

        use_all_cpus()  # before vLLM binds its compute threads: the driver may have pinned Ray to one CPU
        self.engine = AsyncVLLMEngine(ModelConfig(**model_cfg))
        self.loaded, self.loaded_at = time.monotonic(), time.time()
        self.in_flight, self.busy_since, self.busy_s = 0, 0.0, 0.0

    def ready(self) -> dict:
        """Blocks until the engine is loaded; says where it runs (pid, niceness, the CPUs it may use) and when it
        finished loading (`loaded_at`, epoch seconds)."""
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        return {"pid": os.getpid(), "niceness": os.nice(0), "cpus": cpus,
                "loaded_at": self.loaded_at}

    def busy(self) -> dict:
        """Seconds since the engine loaded (`up_s`) and of those, seconds with at least one call in flight
        (`busy_s`): an engine idles while the stages feeding it stall."""
        now = time.monotonic()
        running = now - self.busy_since if self.in_flight else 0.0
        return {"up_s": now - self.loaded, "busy_s": self.busy_s + running}

    async def generate(self, prompts, seeds=None, *, sampling):
        from vllm.v1.engine.exceptions import EngineDeadError

        if self.in_flight == 0:
            self.busy_since = time.monotonic()
        self.in_flight += 1
        try:
            return await self.engine.agenerate(prompts, sampling, seeds)
        except EngineDeadError:
            # a dead vLLM never recovers: end this process so Ray restarts the actor (max_restarts) and re-runs
            # this call and every other one in flight (max_task_retries) on a fresh engine
            log.error("vLLM engine for %s died; exiting so Ray restarts this engine actor",
                      self.engine.model_path)
            os._exit(1)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.busy_s += time.monotonic() - self.busy_since


class RemoteEngine:
    """The `Engine` interface over one or more `EngineActor` replicas (prompts are split evenly across them)."""

    def __init__(self, actors: list, model_path: str, name: str = "", max_restarts: int = 0,
                 groups: list | None = None):
        self.actors, self.model_path, self.name, self.max_restarts = actors, model_path, name, max_restarts
        self.groups = groups or []  # placement groups of tensor-parallel replicas (removed with the actors)
        self.loading = [a.ready.remote() for a in actors]  # the driver's handle on the load (`wait_loaded`)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "loading": []}  # stage actors only call generate

    def generate(self, prompts, sampling, seeds=None):
        prompts = list(prompts)
        seeds = list(seeds) if seeds is not None else [None] * len(prompts)
        k = len(self.actors)
        parts = [(prompts[r::k], seeds[r::k]) for r in range(k)]
        used = [r for r in range(k) if parts[r][0]]
        try:
            results = ray.get([self.actors[r].generate.remote(*parts[r], sampling=sampling) for r in used])
        except ray.exceptions.RayActorError as exc:
            raise EngineUnavailable(
                f"models.{self.name}: the vLLM engine for {self.model_path} died and was restarted "
                f"{self.max_restarts} time(s) (models.{self.name}.max_restarts) without recovering; its "
                f"actor log (ray logs, or the dashboard) says why — fix that, or raise max_restarts and resume"
            ) from exc
        merged = [None] * len(prompts)
        for r, res in zip(used, results):
            merged[r::k] = res
        return merged


def start_engines(models: dict, used: set[str], wait: bool = True) -> dict[str, RemoteEngine]:
    """Start the engine actors for the model names in `used`; with `wait`, block until all are loaded (else
    calls queue on each actor until its engine is up, and `wait_loaded` tells when). A tensor-parallel GPU
    engine gets a placement group per replica (`plan.engine_bundles`); its vLLM workers start in it."""
    from scalequest.pipeline.plan import engine_bundles

    clients = {}
    for name in sorted(used):
        cfg = models[name]
        opts = dict(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, name=None, max_concurrency=1000,
                    runtime_env=ENGINE_RUNTIME_ENV, max_restarts=cfg.max_restarts,
                    max_task_retries=cfg.max_restarts, resources=dict(cfg.resources) or None)
        actors, groups = [], []
        for _ in range(cfg.replicas):
            if bundles := engine_bundles(cfg):
                from ray.util.placement_group import placement_group
                from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

                groups.append(placement_group(bundles, strategy="STRICT_PACK"))
                opts.update(num_gpus=0, scheduling_strategy=PlacementGroupSchedulingStrategy(
                    groups[-1], placement_group_capture_child_tasks=True))
            actors.append(EngineActor.options(**opts).remote(cfg.model_dump()))
        clients[name] = RemoteEngine(actors, cfg.path, name, cfg.max_restarts, groups)
    log.info("loading %d engine(s): %s", len(clients), ", ".join(clients))
    if wait:
        wait_loaded(clients)
    return clients


def wait_loaded(clients: dict[str, RemoteEngine], timeout_s: float | None = None) -> float | None:
    """When the last engine replica finished loading (epoch seconds); None when some are still loading after
    `timeout_s` (None = wait), or there is none. One that failed to load raises EngineUnavailable naming the
    model and the cause."""
    pending = [(name, ref) for name, c in clients.items() for ref in c.loading]
    if not pending:
        return None
    done, _ = ray.wait([ref for _, ref in pending], num_returns=len(pending), timeout=timeout_s)
    loaded_at = 0.0
    for name, ref in pending:
        if ref not in done:
            return None
        try:
            where = ray.get(ref)
            loaded_at = max(loaded_at, where["loaded_at"])
            log.info("engine %s loaded: pid %d, niceness %d, CPUs %s", name, where["pid"], where["niceness"],
                     ",".join(map(str, where["cpus"])))
        except ray.exceptions.RayError as exc:
            c = clients[name]
            raise EngineUnavailable(f"models.{name}: the vLLM engine for {c.model_path} failed to load: "
                                    f"{_cause(exc)} — fix the model's settings (path, dtype, max_model_len, "
                                    f"memory) and run again") from exc
    return loaded_at


def still_loading(clients: dict[str, RemoteEngine]) -> list[str]:
    """Names of the models some replica of which has not finished loading yet (failed loads count as done:
    `wait_loaded` reports them). Does not block."""
    out = []
    for name, c in clients.items():
        if c.loading:
            done, _ = ray.wait(c.loading, num_returns=len(c.loading), timeout=0)
            if len(done) < len(c.loading):
                out.append(name)
    return out


def _cause(exc: BaseException, limit: int = 400) -> str:
    """The original error of a failed actor constructor, from Ray's text of it: the last `SomeError: …` line of the
    traceback it carries and the two lines after it (pydantic puts the reason there), at most `limit` characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    heads = [i for i, line in enumerate(lines) if re.match(r"[\w.]+(Error|Exception)\b[^:]*: ", line)]
    text = " ".join(lines[heads[-1]:heads[-1] + 3]) if heads else (lines[-1] if lines else type(exc).__name__)
    return text if len(text) <= limit else text[:limit] + "…"


def engine_busy(clients: dict[str, RemoteEngine], timeout_s: float = 10.0) -> dict[str, dict]:
    """Model key → summed `up_s` and `busy_s` over its replicas; a replica that does not answer in `timeout_s`
    (dead, restarting) is left out."""
    out = {}
    for name, c in clients.items():
        refs = [a.busy.remote() for a in c.actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        stats = []
        for ref in ready:
            try:
                stats.append(ray.get(ref))
            except ray.exceptions.RayError:
                continue
        if stats:
            out[name] = {k: round(sum(s[k] for s in stats), 2) for k in ("up_s", "busy_s")}
    return out


def stop_engines(clients: dict[str, RemoteEngine]) -> None:
    from ray.util.placement_group import remove_placement_group

    for c in clients.values():
        for a in c.actors:
            ray.kill(a)
        for group in c.groups:
            remove_placement_group(group)


class EngineSet:
    """The pipeline's engine actors for the jobs around it (QPO's sampling, rewriting and judging, the difficulty
    scorer's fail-rate labels, `scalequest eval`): a context manager that starts or joins Ray (`runtime.init_ray`
    with the config's `ray` section, so `ray.address` and `ray.env_vars` hold), then

        get(model_cfg, name) -> RemoteEngine   one engine per model folder, started on first use with the model's
                                               replicas, restarts, CPUs/GPUs and placement (`start_engines`)
        release(keep)                          stops the engines whose folder is not in `keep`

    On exit it stops every engine, shuts down a Ray it started and unlinks the vLLM /dev/shm segments that
    appeared meanwhile."""

    def __init__(self, rcfg):
        self.rcfg = rcfg
        self.open: dict[str, RemoteEngine] = {}
        self.started = False
        self.shm_before: set = set()

    def __enter__(self) -> EngineSet:
        from scalequest.runtime import init_ray, shm_segments

        self.shm_before = shm_segments()
        self.started = init_ray(self.rcfg)
        return self

    def get(self, model, name: str | None = None) -> RemoteEngine:
        """The engine for `model` (a ModelConfig); `name`: its key in `models`, for error messages."""
        if model.path not in self.open:
            key = name or os.path.basename(model.path.rstrip("/"))
            self.open[model.path] = start_engines({key: model}, {key})[key]
        return self.open[model.path]

    def release(self, keep=frozenset()) -> None:
        gone = {path: self.open.pop(path) for path in [p for p in self.open if p not in keep]}
        if gone:
            log.info("stopping engine(s) %s", ", ".join(gone))
            stop_engines(gone)

    def __exit__(self, *exc) -> None:
        from scalequest.runtime import release_vllm_shm, shm_segments

        try:
            self.release()
        finally:
            if self.started:
                ray.shutdown()
            release_vllm_shm(only=shm_segments() - self.shm_before)
