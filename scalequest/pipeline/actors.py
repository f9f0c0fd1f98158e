"""Small Ray actors the pipeline shares between stage replicas: the run's seen-question set (exact dedup), its
near-duplicate LSH index split by bands, and the per-stage timing ledger for the run report; plus `TimedStage`,
which runs any stage and reports its busy time, and `StageChain`, several of them in one actor."""

from __future__ import annotations

import logging
import time

import ray

from scalequest.runtime import use_all_cpus
from scalequest.stages.base import run_guarded
from scalequest.stages.dedup import SeenSet
from scalequest.stages.near_dup import BandGroup

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0)
class SeenStore(SeenSet):
    """`SeenSet` as one actor, so every DropDuplicates replica sees the whole run."""


class RemoteSeenSet:
    """The `SeenSet` interface over `SeenStore` actors, each holding one hash range (hash mod the actor count), so
    the set grows past one actor's memory and lookups spread; every copy of a hash goes to the same actor, in
    order, so "first seen" stays exact."""

    def __init__(self, actors: list):
        self.actors = actors

    @classmethod
    def start(cls, n: int = 1) -> RemoteSeenSet:
        return cls([SeenStore.remote() for _ in range(n)])

    def _parts(self, hashes) -> dict[int, list[int]]:
        parts: dict[int, list[int]] = {}
        for i, h in enumerate(hashes):
            parts.setdefault(int(h[:12], 16) % len(self.actors), []).append(i)
        return parts

    def first_seen(self, hashes):
        hashes = list(hashes)
        parts = self._parts(hashes)
        answers = ray.get([self.actors[k].first_seen.remote([hashes[i] for i in idx]) for k, idx in parts.items()])
        out = [False] * len(hashes)
        for idx, part in zip(parts.values(), answers):
            for i, first in zip(idx, part):
                out[i] = first
        return out

    def record(self, hashes):
        hashes = list(hashes)
        ray.get([self.actors[k].record.remote([hashes[i] for i in idx]) for k, idx in self._parts(hashes).items()])


@ray.remote(num_cpus=0)
class BandStore(BandGroup):
    """`BandGroup` as one actor: the LSH tables and signature values of some of the bands."""


class RemoteBandGroups:
    """The `BandGroup` interface over `BandStore` actors, each holding a share of the bands (band b on actor
    b mod n): candidates are the union of theirs, agreement the sum of theirs; every call goes to all of them."""

    def __init__(self, actors: list):
        self.actors = actors

    @classmethod
    def start(cls, cfg) -> RemoteBandGroups:
        """`cfg`: NearDupConfig (bands, num_perm, store_actors)."""
        n, rows = cfg.store_actors, cfg.num_perm // cfg.bands
        return cls([BandStore.remote(range(k, cfg.bands, n), rows) for k in range(n)])

    def candidates(self, sigs):
        sigs = ray.put(sigs) if len(self.actors) > 1 else sigs  # one copy in the object store for all of them
        parts = ray.get([a.candidates.remote(sigs) for a in self.actors])
        return [sorted(set().union(*rows)) for rows in zip(*parts)]

    def agreement(self, sigs, candidates):
        if len(self.actors) > 1:
            sigs, candidates = ray.put(sigs), ray.put(candidates)
        parts = ray.get([a.agreement.remote(sigs, candidates) for a in self.actors])
        return [[sum(vals) for vals in zip(*rows)] for rows in zip(*parts)]

    def insert(self, ids, sigs) -> None:
        sigs = ray.put(sigs) if len(self.actors) > 1 else sigs
        ray.get([a.insert.remote(ids, sigs) for a in self.actors])

    def size(self) -> int:
        return ray.get(self.actors[0].size.remote())


@ray.remote(num_cpus=0)
class StageLedger:
    """Busy seconds, batches and rows per stage, summed over all replicas, and the (start, end) wall times of the
    first `MAX_SPANS` batches of each stage (how the batches overlapped: benchmarks read them)."""

    MAX_SPANS = 1000

    def __init__(self):
        self.stages: dict[str, dict] = {}

    def record(self, stage: str, seconds: float, rows: int, first_start: float, last_end: float) -> None:
        s = self.stages.setdefault(stage, dict(busy_s=0.0, batches=0, rows=0, first_start=first_start, last_end=0.0,
                                               spans=[]))
        s["busy_s"] += seconds
        s["batches"] += 1
        s["rows"] += rows
        s["first_start"] = min(s["first_start"], first_start)
        s["last_end"] = max(s["last_end"], last_end)
        if len(s["spans"]) < self.MAX_SPANS:
            s["spans"].append((first_start, last_end))

    def snapshot(self) -> dict:
        return self.stages


class TimedStage:
    """Builds `stage_cls(**kwargs)` once per Ray actor, runs it guarded (a row that raises becomes a reject with
    'error: <type>: <message>', logged with its id) and reports each batch's duration to the ledger."""

    def __init__(self, stage_cls, kwargs: dict, name: str, ledger):
        use_all_cpus()  # a stage's CPU work (fastText, math-verify) is not Ray's daemon work (runtime.py)
        self.stage, self.name, self.ledger = stage_cls(**kwargs), name, ledger

    def __call__(self, batch):
        start_wall, t0 = time.time(), time.perf_counter()

        def on_error(i, exc):
            row_id = batch["id"][i] if "id" in batch else i
            log.warning("stage %s: row %s failed (%s: %s); it becomes a reject", self.name, row_id,
                        type(exc).__name__, exc, exc_info=exc)

        out = run_guarded(self.stage, batch, self.name, on_error)
        rows = len(next(iter(batch.values()))) if batch else 0
        self.ledger.record.remote(self.name, time.perf_counter() - t0, rows, start_wall, time.time())
        return out


class StageChain:
    """Stages folded into one Ray Data operator (`plan.operators`): `members` = (stage class, kwargs, name) in
    pipeline order; each actor builds all of them and runs each block through them one after the other, each as
    a `TimedStage` (guarded, timed to the ledger under its own name), so funnel, progress and report still see
    every stage."""

    def __init__(self, members: list[tuple], ledger):
        self.stages = [TimedStage(cls, kwargs, name, ledger) for cls, kwargs, name in members]

    def __call__(self, batch):
        for stage in self.stages:
            batch = stage(batch)
        return batch
