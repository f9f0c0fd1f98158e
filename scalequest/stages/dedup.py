"""Exact de-duplication of questions within a run (normalized-text hash; the first copy seen is kept).

  in: question    out: + question_hash (and a reject for repeats)
"""

from __future__ import annotations

from scalequest.mathcheck import question_hash
from scalequest.stages.base import Rejects, column, require

STAGE = "dedup"


class SeenSet:
    """In-process store of seen hashes. The pipeline passes a Ray-actor-backed store with the same method."""

    def __init__(self):
        self.seen: set[str] = set()

    def first_seen(self, hashes: list[str]) -> list[bool]:
        """For each hash, True if no earlier call (or earlier item in this call) had it; records them all."""
        out = []
        for h in hashes:
            out.append(h not in self.seen)
            self.seen.add(h)
        return out

    def record(self, hashes: list[str]) -> None:
        """Add hashes seen before (a resumed run's shards) without asking about them."""
        self.seen.update(hashes)

    def size(self) -> int:
        return len(self.seen)


class DropDuplicates:
    """Reject a question whose normalized text was already seen in this run."""

    def __init__(self, enabled: bool = True, store=None):
        self.enabled = enabled
        self.store = store if store is not None else SeenSet()

    def __call__(self, batch: dict) -> dict:
        n = require("DropDuplicates", batch, ["question"])
        questions = column(batch, "question")
        rejects = Rejects(batch, n)
        hashes = [question_hash(q) if q else None for q in questions]
        rows = rejects.kept()
        if self.enabled and rows:
            for i, first in zip(rows, self.store.first_seen([hashes[i] for i in rows])):
                if not first:
                    rejects.reject(i, STAGE, "duplicate of an earlier question")
        out = {k: column(batch, k) for k in batch}
        out.update(question_hash=hashes, **rejects.columns())
        return out
