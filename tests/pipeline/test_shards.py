"""The shard ledger without Ray: atomic per-status shards named by their lowest id, the scan a resume starts
from (temporaries and torn files set aside, ids in two shards refused), and the dedup refill."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalequest.pipeline.shards import (
    RunStateError,
    WriteShards,
    dedup_hashes,
    remaining_ids,
    scan_shards,
)
from scalequest.pipeline.storage import as_folder
from scalequest.schema import output_schema


def finalized(ids, rejected=(), stages=None, hashes=None):
    """A block as FinalizeRows makes it: `rejected` ids get a reject (at `stages[id]`, default 'language')."""
    stages = stages or {}
    n = len(ids)
    cols = {name: [None] * n for name in output_schema().names}
    cols["id"] = list(ids)
    cols["question_hash"] = [hashes.get(i) if hashes else f"h{i}" for i in ids]
    cols["reject_stage"] = [stages.get(i, "language") if i in rejected else None for i in ids]
    cols["reject_reason"] = ["x" if i in rejected else None for i in ids]
    cols["status"] = ["rejected" if i in rejected else "kept" for i in ids]
    cols["question_tokens"] = [3] * n
    return pa.Table.from_pydict(cols, schema=output_schema())


def test_write_shards_splits_by_status_names_by_lowest_id_and_summarizes(tmp_path):
    out = WriteShards(tmp_path)(finalized([7, 5, 6, 9], rejected={6, 9}))
    kept = pq.read_table(tmp_path / "data" / "status=kept" / "part-000000000005.parquet")
    rejected = pq.read_table(tmp_path / "data" / "status=rejected" / "part-000000000006.parquet")
    assert sorted(kept.column("id").to_pylist()) == [5, 7] and sorted(rejected.column("id").to_pylist()) == [6, 9]
    assert "status" not in kept.column_names  # hive partitioning: the folder name holds it
    assert out.to_pydict() == {"first_id": [5], "rows": [4], "kept": [2], "errors": [0], "question_tokens": [12],
                               "judge_tokens": [0], "response_tokens": [0]}
    assert not [p for p in (tmp_path / "data").rglob(".*")], "no temporaries left behind"
    whole = pq.read_table(tmp_path / "data")  # readers see one table with the status column back
    assert whole.num_rows == 4 and set(whole.column("status").to_pylist()) == {"kept", "rejected"}


def test_scan_reads_ids_and_sets_aside_what_a_kill_left(tmp_path):
    write = WriteShards(tmp_path)
    write(finalized([0, 1, 2, 3], rejected={1}))
    write(finalized([4, 5, 6, 7]))
    torn = tmp_path / "data" / "status=kept" / "part-000000000008.parquet"
    torn.write_bytes((tmp_path / "data" / "status=kept" / "part-000000000004.parquet").read_bytes()[:100])
    tmp = tmp_path / "data" / "status=kept" / ".part-000000000012.parquet.ab12cd34.tmp"
    tmp.write_bytes(b"PAR1 half")

    scan = scan_shards(tmp_path)
    assert scan.ids == [0, 1, 2, 3, 4, 5, 6, 7] and scan.kept == 7 and len(scan.files) == 3
    assert sorted(p.name for p in scan.set_aside) == sorted([torn.name, tmp.name])
    assert not torn.exists() and not tmp.exists()
    assert all(p.is_file() and p.relative_to(as_folder(tmp_path)).startswith("set_aside/") for p in scan.set_aside)
    assert remaining_ids(10, scan.ids).tolist() == [8, 9]
    assert scan_shards(tmp_path).set_aside == []  # a second scan finds nothing new


def test_scan_of_a_folder_without_data_is_empty(tmp_path):
    scan = scan_shards(tmp_path)
    assert scan.ids == [] and scan.files == [] and remaining_ids(3, scan.ids).tolist() == [0, 1, 2]


def test_scan_refuses_an_id_in_two_shards(tmp_path):
    WriteShards(tmp_path)(finalized([0, 1]))
    WriteShards(tmp_path / "other")(finalized([1, 2]))
    Path(tmp_path / "other" / "data" / "status=kept" / "part-000000000001.parquet").rename(
        tmp_path / "data" / "status=kept" / "part-000000000001.parquet")
    with pytest.raises(RunStateError, match=r"ids \[1\] are in more than one shard"):
        scan_shards(tmp_path)


def test_dedup_hashes_are_those_of_rows_that_passed_dedup(tmp_path):
    stages = {1: "language", 2: "dedup", 3: "solvability", 4: "generate"}
    WriteShards(tmp_path)(finalized([0, 1, 2, 3, 4], rejected={1, 2, 3, 4}, stages=stages))
    hashes = [h for batch in dedup_hashes(scan_shards(tmp_path).files) for h in batch]
    assert sorted(hashes) == ["h0", "h3"]  # kept, and rejected after dedup; not before it, not its repeats


def test_an_execution_stops_writing_once_a_newer_one_claims_the_run(tmp_path):
    from scalequest.pipeline.shards import claim

    old = WriteShards(tmp_path, claim(tmp_path))
    old(finalized([0, 1]))
    claim(tmp_path)  # a resume took over while the old execution's tasks still run
    out = old(finalized([2, 3]))
    assert out.column("rows").to_pylist() == [0]
    assert scan_shards(tmp_path).ids == [0, 1] and not list((tmp_path / "data").rglob(".*"))
