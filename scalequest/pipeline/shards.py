"""The run's Parquet shards: written one block at a time while the run goes on, atomically, and scanned back when
a run resumes. The shard files are the ledger: an id is done exactly when a complete shard holds it.

Layout: <run>/data/status=kept/part-<lowest id>.parquet and status=rejected/… (hive partitioning: the `status`
column lives in the folder name). A shard is written whole or not at all (`storage.Folder.write_parquet`: on disk a
hidden temporary, flushed, then renamed; on object storage one upload), so a reader never sees half a file; what a
kill leaves behind (temporaries, unreadable files) is moved to <run>/set_aside/ by `scan_shards` and its ids are
made again. The run folder may be local or on object storage (`storage.Folder`).

  WriteShards(run_dir, token) Ray Data stage: pyarrow block in → shard files, one summary row out
  scan_shards(run_dir)        ids already on disk (set-aside files reported), for `--resume`
  dedup_hashes(files)         per shard, the question hashes that passed dedup (to refill the seen set)
  near_dup_rows(files)        per shard, the ids and questions that passed near-dup (to refill the LSH index)

Test: tests/pipeline/test_shards.py (no Ray), tests/pipeline/test_resume.py (kill -9 and resume).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scalequest.errors import ScaleQuestError
from scalequest.pipeline.run_dir import DATA_DIR
from scalequest.pipeline.storage import Folder, as_folder
from scalequest.schema import FUNNEL_STAGES, KEPT, REJECT_REASON, REJECT_STAGE, REJECTED, TOKEN_COLUMNS
from scalequest.stages.base import ERROR_PREFIX

log = logging.getLogger(__name__)

SET_ASIDE = "set_aside"
WRITER_FILE = "writer"  # the token of the execution allowed to write shards
# rows rejected at these stages never reached the seen set (dedup) or were its repeats
BEFORE_SEEN = set(FUNNEL_STAGES[: FUNNEL_STAGES.index("dedup") + 1])
BEFORE_NEAR_INDEX = set(FUNNEL_STAGES[: FUNNEL_STAGES.index("near_dup") + 1])  # likewise for the near-dup index


class RunStateError(ScaleQuestError):
    """A run folder's shards contradict each other (an id in two shards): it cannot be resumed as it is."""


def shard_name(first_id: int) -> str:
    return f"part-{first_id:012d}.parquet"


def write_atomic(table, path: Folder | Path | str, still_mine=lambda: True) -> bool:
    """Write `table` to `path` so that `path` either does not exist or holds the whole file. Nothing is put in
    place unless `still_mine()` holds just before; returns whether it was (`storage.Folder.write_parquet`)."""
    return as_folder(path).write_parquet(table, still_mine)


def claim(run_dir: Folder | Path | str) -> str:
    """Make this execution the run folder's only writer: a later claim (a resume) stops the shard writes of an
    earlier execution whose tasks outlived their driver (kill -9). Returns this execution's token."""
    token = uuid.uuid4().hex
    (as_folder(run_dir) / WRITER_FILE).write_text(token)
    return token


class WriteShards:
    """Write a finalized block (a pyarrow Table with `output_schema()`'s columns) as one shard per status under
    <run_dir>/data; return one row: first_id, rows, kept and tokens per kind (the driver's progress reads these).
    `token` (from `claim`): write only while the run folder's writer file still holds it."""

    def __init__(self, run_dir: Folder | Path | str, token: str | None = None):
        run_dir = as_folder(run_dir)
        self.data_dir, self.token = run_dir / DATA_DIR, token
        self.writer_file = run_dir / WRITER_FILE

    def still_mine(self) -> bool:
        return self.token is None or self.writer_file.read_text() == self.token

    def __call__(self, table):
        import pyarrow as pa
        import pyarrow.compute as pc

        errors = pc.sum(pc.starts_with(pc.fill_null(table[REJECT_REASON], ""), ERROR_PREFIX)).as_py() or 0
        summary = {"first_id": [None], "rows": [table.num_rows], "kept": [0], "errors": [errors]}
        for status in (KEPT, REJECTED):
            part = table.filter(pc.equal(table["status"], status))
            if part.num_rows == 0:
                continue
            first = pc.min(part["id"]).as_py()
            path = self.data_dir / f"status={status}" / shard_name(first)
            if not write_atomic(part.drop_columns(["status"]), path, self.still_mine):
                log.warning("not writing %s: a newer execution of this run owns the folder", path)
                return pa.table({"first_id": [None], "rows": [0], "kept": [0], "errors": [0],
                                 **{c: [0] for c in TOKEN_COLUMNS}})
            if status == KEPT:
                summary["kept"] = [part.num_rows]
        if table.num_rows:
            summary["first_id"] = [pc.min(table["id"]).as_py()]
        for col in TOKEN_COLUMNS:
            summary[col] = [pc.sum(table[col]).as_py() or 0]
        return pa.table(summary)


@dataclass
class ShardScan:
    """What a run folder holds: the ids on disk (sorted), the shard files, kept count and what was set aside."""

    ids: list[int] = field(default_factory=list)
    files: list[Folder] = field(default_factory=list)
    kept: int = 0
    set_aside: list[Folder] = field(default_factory=list)


def scan_shards(run_dir: Folder | Path | str) -> ShardScan:
    """Read the id column of every shard under <run_dir>/data; move temporaries and unreadable shards to
    <run_dir>/set_aside/ (never read as data). Raises RunStateError when an id is in two shards."""
    import numpy as np

    run_dir = as_folder(run_dir)
    data_dir, scan = run_dir / DATA_DIR, ShardScan()
    parts = []
    for path in data_dir.files():
        if path.name.startswith(".") or not path.name.endswith(".parquet"):
            scan.set_aside.append(_set_aside(run_dir, path, "left by an interrupted write"))
            continue
        try:
            ids = path.read_parquet(columns=["id"]).column("id").to_numpy()
        except Exception as exc:  # noqa: BLE001 - any unreadable file is set aside, whatever pyarrow says
            scan.set_aside.append(_set_aside(run_dir, path, f"unreadable ({type(exc).__name__})"))
            continue
        parts.append(ids)
        scan.files.append(path)
        if f"/status={KEPT}/" in path.path:
            scan.kept += len(ids)
    if parts:
        ids = np.sort(np.concatenate(parts))
        repeated = ids[1:][ids[1:] == ids[:-1]]
        if repeated.size:
            raise RunStateError(
                f"{data_dir}: ids {repeated[:10].tolist()} are in more than one shard — this folder was not written "
                "by one ScaleQuest run; move the extra shards out, or start a new run")
        scan.ids = ids.tolist()
    return scan


def _set_aside(run_dir: Folder, path: Folder, why: str) -> Folder:
    dest = run_dir / SET_ASIDE / path.relative_to(run_dir / DATA_DIR)
    path.move_to(dest)
    log.warning("set aside %s (%s): its rows are made again", path, why)
    return dest


def remaining_ids(num_candidates: int, done: list[int]):
    """The ids 0..num_candidates-1 not in `done`, as a sorted int64 numpy array."""
    import numpy as np

    all_ids = np.arange(num_candidates, dtype=np.int64)
    return np.setdiff1d(all_ids, np.asarray(done, dtype=np.int64), assume_unique=True)


def dedup_hashes(files: list[Folder]) -> Iterator[list[str]]:
    """Per shard, the question hashes of rows that passed dedup (the run's seen set before a stop)."""
    for path in map(as_folder, files):
        t = path.read_parquet(columns=["question_hash", REJECT_STAGE]).to_pydict()
        yield [h for h, s in zip(t["question_hash"], t[REJECT_STAGE]) if h is not None and s not in BEFORE_SEEN]


def near_dup_rows(files: list[Folder]) -> Iterator[tuple[list[int], list[str]]]:
    """Per shard, (ids, questions) of rows that passed near-dup (the run's LSH index before a stop)."""
    for path in map(as_folder, files):
        t = path.read_parquet(columns=["id", "question", REJECT_STAGE]).to_pydict()
        rows = [(i, q) for i, q, s in zip(t["id"], t["question"], t[REJECT_STAGE]) if q and s not in BEFORE_NEAR_INDEX]
        if rows:
            yield [i for i, _ in rows], [q for _, q in rows]
