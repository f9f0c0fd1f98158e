"""How the pipeline places work on Ray: LLM stage actors fill every concurrent call they offer, the engine
actor runs at the niceness of a plain process rather than Ray's worker default of 15, and an engine actor whose
vLLM was killed comes back with its batches (or, past models.<name>.max_restarts, fails the call by name)."""

import asyncio

import numpy as np
import pytest

from scalequest.config import load_config

pytestmark = pytest.mark.ray


@pytest.fixture
def local_ray():
    import ray

    ray.init(num_cpus=8, include_dashboard=False)
    yield ray
    ray.shutdown()


def _gate(ray):
    @ray.remote
    class Gate:
        """Holds every caller until `n` have arrived (or `timeout` s pass): True when all `n` were in at once."""

        def __init__(self, n: int):
            self.n, self.arrived, self.full, self.actors = n, 0, asyncio.Event(), 0

        def join(self) -> int:
            """Numbers the stage actors as they start: 0, 1, …"""
            self.actors += 1
            return self.actors - 1

        async def arrive(self, timeout: float) -> bool:
            self.arrived += 1
            if self.arrived >= self.n:
                self.full.set()
            try:
                await asyncio.wait_for(self.full.wait(), timeout)
                return True
            except asyncio.TimeoutError:
                return False

    return Gate


class WaitAtGate:
    """A stage whose batches each wait at the gate, like LLM batches waiting on the engine. The second actor
    takes 5 s longer to start (as a fresh worker process does next to one Ray had ready)."""

    def __init__(self, gate):
        import time

        import ray

        self.gate = gate
        if ray.get(gate.join.remote()) == 1:
            time.sleep(5)

    def __call__(self, batch):
        import ray

        met = ray.get(self.gate.arrive.remote(20.0))
        return {"id": batch["id"], "met": np.full(len(batch["id"]), met)}


def test_llm_stage_runs_actors_times_calls_batches_at_once(local_ray):
    """2 actors x 4 calls = 8 batches must run together. Ray Data's default hands one actor up to 8 tasks, the
    extra 4 queued behind its running ones while the other actor idles; then the gate never fills in time."""
    from scalequest.pipeline.actors import StageLedger
    from scalequest.pipeline.build import DatasetBuilder

    ray = local_ray
    gate = _gate(ray).remote(8)
    ds = ray.data.from_items([{"id": i} for i in range(8 * 4)]).repartition(8)
    ds = DatasetBuilder(StageLedger.remote()).add(ds, "gate", WaitAtGate, dict(gate=gate), batch_size=4,
                                                  concurrency=2, calls=4)
    met = [r["met"] for r in ds.take_all()]
    assert len(met) == 32 and all(met), f"{met.count(False)} of 32 rows waited for a batch that never started"


def test_engine_actor_runs_at_niceness_zero_generates_and_counts_its_busy_time(local_ray, tiny_llm):
    import time

    from scalequest.engines.base import Sampling
    from scalequest.pipeline.engine_pool import engine_busy, start_engines, stop_engines

    ray = local_ray

    @ray.remote
    class Plain:
        def niceness(self):
            import os

            return os.nice(0)

    assert ray.get(Plain.remote().niceness.remote()) == 15, "Ray's worker default changed: revisit ENGINE_RUNTIME_ENV"
    cfg = load_config("tiny", tiny_llm)
    engines = start_engines(cfg.models, {"smollm2"})
    try:
        (actor,) = engines["smollm2"].actors
        assert ray.get(actor.ready.remote())["niceness"] == 0
        idle = engine_busy(engines)["smollm2"]
        assert idle["busy_s"] == 0 and idle["up_s"] > 0
        t0 = time.perf_counter()
        out = engines["smollm2"].generate(["Hello", "Hi"], Sampling(max_tokens=4, temperature=1.0), [1, 2])
        call_s = time.perf_counter() - t0
        assert [len(o) for o in out] == [1, 1] and all(o[0].num_tokens > 0 for o in out)
        time.sleep(0.5)  # idle again: this time must not count
        after = engine_busy(engines)["smollm2"]
        # engine_busy rounds to 0.01 s: two rounded readings may differ by up to 0.01 less than the time between
        assert 0 < after["busy_s"] <= call_s + 0.01 and after["up_s"] >= idle["up_s"] + call_s + 0.5 - 0.01
    finally:
        stop_engines(engines)


def _generate_in_background(engine, prompts, seeds):
    """Start `engine.generate` in a thread; returns the thread and the list its result lands in."""
    import threading

    from scalequest.engines.base import Sampling

    out = []
    t = threading.Thread(target=lambda: out.append(
        engine.generate(prompts, Sampling(max_tokens=128, temperature=1.0), seeds)))
    t.start()
    return t, out


@pytest.mark.slow
def test_engine_actor_whose_vllm_is_killed_restarts_and_finishes_its_batch(local_ray, tiny_llm, tiny_engine,
                                                                           kill_vllm_under):
    import time

    from scalequest.engines.base import Sampling
    from scalequest.pipeline.engine_pool import start_engines, stop_engines

    ray = local_ray
    prompts, seeds = [f"Question {i}:" for i in range(128)], list(range(128))
    engines = start_engines(load_config("tiny", tiny_llm).models, {"smollm2"})
    try:
        (actor,) = engines["smollm2"].actors
        pid = ray.get(actor.ready.remote())["pid"]
        thread, out = _generate_in_background(engines["smollm2"], prompts, seeds)
        time.sleep(0.5)  # the batch is in the engine now (it takes several seconds)
        kill_vllm_under(pid)
        thread.join(timeout=300)
        assert not thread.is_alive() and out, "the batch never came back"
        assert ray.get(actor.ready.remote())["pid"] != pid, f"the engine actor was not restarted: {out[0][:2]}"
    finally:
        stop_engines(engines)
    [got] = out
    want = tiny_engine.generate(prompts, Sampling(max_tokens=128, temperature=1.0), seeds)  # same seeds, same rows
    assert [[g.text for g in o] for o in got] == [[g.text for g in o] for o in want]


@pytest.mark.slow
def test_engine_actor_past_its_restarts_fails_the_call_naming_the_key(local_ray, tiny_llm, kill_vllm_under):
    from scalequest.engines.base import Sampling
    from scalequest.errors import EngineUnavailable
    from scalequest.pipeline.engine_pool import start_engines, stop_engines

    ray = local_ray
    engines = start_engines(load_config("tiny", [*tiny_llm, "models.smollm2.max_restarts=0"]).models, {"smollm2"})
    try:
        (actor,) = engines["smollm2"].actors
        kill_vllm_under(ray.get(actor.ready.remote())["pid"])
        with pytest.raises(EngineUnavailable, match=r"models\.smollm2\.max_restarts"):
            engines["smollm2"].generate(["Hello"], Sampling(max_tokens=4), [0])
    finally:
        stop_engines(engines)


class FailOnIds:
    """A stage that raises on any batch holding one of `bad` ids, as a model that chokes on some inputs would."""

    def __init__(self, bad):
        self.bad = set(bad)

    def __call__(self, batch):
        from scalequest.stages.base import Rejects, column

        ids = column(batch, "id")
        if self.bad & set(ids):
            raise ValueError(f"cannot handle {sorted(self.bad & set(ids))}")
        return {"id": ids, "ok": [True] * len(ids), **Rejects(batch, len(ids)).columns()}


def test_stage_that_raises_on_chosen_rows_rejects_them_and_keeps_the_rest(local_ray):
    from scalequest.pipeline.actors import StageLedger
    from scalequest.pipeline.build import DatasetBuilder

    ray = local_ray
    ds = DatasetBuilder(StageLedger.remote()).add(ray.data.range(20, override_num_blocks=4), "fragile", FailOnIds,
                                                  {"bad": {3, 11}}, batch_size=5, concurrency=2)
    rows = sorted(ds.take_all(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(20))
    failed = [r for r in rows if r["reject_reason"]]
    assert [r["id"] for r in failed] == [3, 11]
    assert all(r["reject_stage"] == "fragile" for r in failed)
    assert [r["reject_reason"] for r in failed] == ["error: ValueError: cannot handle [3]",
                                                    "error: ValueError: cannot handle [11]"]
    assert all(r["ok"] for r in rows if not r["reject_reason"])


def test_seen_set_split_over_store_actors_stays_exact(local_ray):
    from scalequest.mathcheck import question_hash
    from scalequest.pipeline.actors import RemoteSeenSet
    from scalequest.stages.dedup import SeenSet

    hashes = [question_hash(f"What is {i % 30} + 1?") for i in range(90)]  # each question three times
    remote, local = RemoteSeenSet.start(3), SeenSet()
    remote.record(hashes[:5])
    local.record(hashes[:5])
    for i in range(0, 90, 20):  # batches that mix new questions, repeats within a batch and earlier ones
        assert remote.first_seen(hashes[i:i + 20]) == local.first_seen(hashes[i:i + 20])
    sizes = local_ray.get([a.size.remote() for a in remote.actors])
    assert sum(sizes) == 30 and min(sizes) > 0  # every question once, spread over the three actors


def test_near_dup_index_split_over_band_actors_decides_as_one_index(local_ray, shared_data):
    import json

    from scalequest.config import load_config
    from scalequest.pipeline.actors import RemoteBandGroups
    from scalequest.stages.near_dup import DropNearDuplicates

    with open(shared_data / "gsm8k/train.jsonl") as f:
        base = [json.loads(line)["question"] for _, line in zip(range(40), f)]
    questions = [q for q in base for q in (q, q.replace(" ", "  ", 1) + " Show your work.")]  # each + a near-copy
    cfg = load_config("tiny", ["near_dup.store_actors=3"]).near_dup
    split, alone = DropNearDuplicates(cfg, RemoteBandGroups.start(cfg)), DropNearDuplicates(cfg)
    for i in range(0, 80, 16):
        batch = {"id": list(range(i, i + 16)), "question": questions[i:i + 16]}
        assert split(batch)["reject_reason"] == alone(batch)["reject_reason"]
    assert 0 < alone.index.size() < 80  # some near-copies were rejected, the firsts indexed
    # each of the three actors holds its share of the bands for every indexed question
    assert local_ray.get([a.size.remote() for a in split.index.actors]) == [alone.index.size()] * 3
