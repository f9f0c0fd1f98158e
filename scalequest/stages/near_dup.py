"""Near-duplicate removal within a run: MinHash LSH over character shingles of the normalized question (rensa
signatures, our own band tables). The first copy seen is kept; a later question whose estimated Jaccard
similarity with an earlier one reaches `near_dup.threshold` (0.8) is rejected, naming that one's id:
"near-duplicate of id 17 (Jaccard ~0.88)".

Signatures: `num_perm` (128) MinHash values per question from rensa's `RMinHash` (seeded, the same in every
process, so a resumed run re-inserts its earlier questions exactly). They are cut into `bands` (16) bands of
num_perm / bands rows; two questions become candidates when one band is equal, and a candidate counts when the
share of equal values over all num_perm (the Jaccard estimate) reaches the threshold. 16 × 8 finds 99% of the
light edits with true Jaccard ≥ 0.8 that bench/minhash_libs.py plants; rensa's own default 8 × 16 finds 87%.

The index is a `BandGroup` (the band tables and signature slices of some of the bands). In one process the
stage holds one group of every band; the pipeline splits the bands over `near_dup.store_actors` Ray actors
(`pipeline.actors.RemoteBandGroups`), each holding its share of the tables and signatures. A question's
candidates are the union over the groups, its estimate the sum of their equal values.

  in: id, question    out: (a reject for near-copies)
"""

from __future__ import annotations

import numpy as np

from scalequest.mathcheck.text import normalize_question
from scalequest.stages.base import Rejects, column, passthrough, require

STAGE = "near_dup"
# fixed odd multipliers: a band's key is the same in every process (Python's hash() is salted per process)
_MULT = np.random.default_rng(20241024).integers(1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)


def shingles(text: str, n: int) -> list[str]:
    """The distinct character n-grams of the normalized text (the whole text when shorter than n)."""
    t = normalize_question(text)
    return list({t[i:i + n] for i in range(max(1, len(t) - n + 1))})


def signatures(texts: list[str], cfg) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash signatures (rensa, seeded by `cfg.seed`)."""
    import rensa

    if not texts:
        return np.zeros((0, cfg.num_perm), dtype=np.uint32)
    matrix = rensa.RMinHash.digest_matrix_from_token_sets([shingles(t, cfg.shingle) for t in texts], cfg.num_perm,
                                                          cfg.seed)
    return np.asarray(matrix.to_rows(), dtype=np.uint32)


class BandGroup:
    """The LSH tables of `bands` (indices into the signature's bands of `rows` values) and each inserted id's
    values in those bands. `candidates`, `agreement` and `insert` take full (n, num_perm) signatures."""

    def __init__(self, bands, rows: int):
        self.bands, self.rows = list(bands), rows
        self.cols = np.concatenate([np.arange(b * rows, (b + 1) * rows) for b in self.bands])
        self.tables: list[dict[int, list[int]]] = [{} for _ in self.bands]
        self.values: dict[int, np.ndarray] = {}

    def _keys(self, sigs: np.ndarray) -> np.ndarray:
        part = sigs[:, self.cols].reshape(len(sigs), len(self.bands), self.rows).astype(np.uint64)
        return (part * _MULT[: self.rows]).sum(axis=2, dtype=np.uint64)  # (n, bands), wraps mod 2^64

    def candidates(self, sigs: np.ndarray) -> list[list[int]]:
        """For each signature, the ids inserted earlier that share one of this group's bands."""
        keys = self._keys(sigs)
        return [sorted({c for j, table in enumerate(self.tables) for c in table.get(int(row[j]), ())})
                for row in keys]

    def agreement(self, sigs: np.ndarray, candidates: list[list[int]]) -> list[list[int]]:
        """For each signature and each of its candidate ids: how many of this group's values are equal."""
        part = sigs[:, self.cols]
        return [[int(np.count_nonzero(self.values[c] == part[i])) if c in self.values else 0 for c in cands]
                for i, cands in enumerate(candidates)]

    def insert(self, ids: list[int], sigs: np.ndarray) -> None:
        keys, part = self._keys(sigs), sigs[:, self.cols]
        for i, id_ in enumerate(ids):
            for j, table in enumerate(self.tables):
                table.setdefault(int(keys[i, j]), []).append(int(id_))
            self.values[int(id_)] = part[i].copy()

    def size(self) -> int:
        return len(self.values)


def local_index(cfg) -> BandGroup:
    """One in-process group of every band (a stage's own index when no store is given)."""
    return BandGroup(range(cfg.bands), cfg.num_perm // cfg.bands)


class DropNearDuplicates:
    """Reject a question whose estimated Jaccard similarity with an earlier question of the run reaches
    `cfg.threshold` (`cfg`: NearDupConfig). `index`: the run's BandGroup-like store (default: its own)."""

    def __init__(self, cfg, index=None):
        self.cfg = cfg
        self.index = index if index is not None else (local_index(cfg) if cfg.enabled else None)

    def __call__(self, batch: dict) -> dict:
        n = require("DropNearDuplicates", batch, ["id", "question"])
        ids, questions = column(batch, "id"), column(batch, "question")
        rejects = Rejects(batch, n)
        rows = [i for i in rejects.kept() if questions[i]]
        if self.index is not None and rows:
            self._check(rows, [int(ids[i]) for i in rows], signatures([questions[i] for i in rows], self.cfg),
                        rejects)
        out = passthrough(batch)
        out.update(**rejects.columns())
        return out

    def _check(self, rows: list[int], ids: list[int], sigs: np.ndarray, rejects: Rejects) -> None:
        """Against the run (the index) and, in order, against the batch's earlier rows; insert the new ones."""
        cands = self.index.candidates(sigs)
        agree = self.index.agreement(sigs, cands)
        batch_index, new = local_index(self.cfg), []
        for k, row in enumerate(rows):
            one = sigs[k:k + 1]
            inner = batch_index.candidates(one)
            pairs = list(zip(cands[k], agree[k])) + list(zip(inner[0], batch_index.agreement(one, inner)[0]))
            best = max(pairs, key=lambda p: (p[1], -p[0]), default=None)
            similarity = best[1] / self.cfg.num_perm if best else 0.0
            if similarity >= self.cfg.threshold:
                rejects.reject(row, STAGE, f"near-duplicate of id {best[0]} (Jaccard ~{similarity:.2f})")
                continue
            batch_index.insert([ids[k]], one)
            new.append(k)
        if new:
            self.index.insert([ids[k] for k in new], sigs[new])
