"""`Folder`, the run folder's storage layer, on the local disk and on S3 (a moto server the test starts on
loopback; credentials only in the standard AWS environment variables)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalequest.errors import ConfigError
from scalequest.pipeline.storage import Folder


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path) -> Folder:
    if request.param == "local":
        return Folder(tmp_path / "run")
    request.getfixturevalue("s3_server")
    return Folder(f"s3://runs/{request.node.name.replace('[', '-').rstrip(']')}")


def test_text_files_listing_and_moves(folder):
    assert not folder.exists() and folder.files() == []
    (folder / "config.yaml").write_text("seed: 0\n")
    (folder / "data" / "status=kept" / "part-1.parquet").write_bytes(b"x")
    (folder / "data" / "status=kept" / ".part-2.parquet.tmp").write_bytes(b"half")
    assert (folder / "config.yaml").read_text() == "seed: 0\n" and (folder / "config.yaml").is_file()
    assert [f.relative_to(folder) for f in folder.files()] == [
        "config.yaml", "data/status=kept/.part-2.parquet.tmp", "data/status=kept/part-1.parquet"]
    torn = folder / "data" / "status=kept" / ".part-2.parquet.tmp"
    torn.move_to(folder / "set_aside" / "part-2.tmp")
    assert not torn.exists() and (folder / "set_aside" / "part-2.tmp").read_bytes() == b"half"
    assert str(folder / "x") == f"{folder.uri}/x" and (folder / "data").name == "data"


def test_parquet_is_written_whole_or_not_at_all_and_reads_back_with_pyarrow(folder):
    table = pa.table({"id": [3, 1, 2], "question": ["a", "b", None]})
    shard = folder / "data" / "status=kept" / "part-000000000001.parquet"
    assert not (folder / "data" / "other.parquet").write_parquet(table, still_mine=lambda: False)
    assert shard.write_parquet(table)
    assert [f.name for f in folder.files()] == ["part-000000000001.parquet"]  # no temporary, no refused file
    back = pq.read_table(shard.path, filesystem=shard.fs)
    assert back.equals(table)
    data = pq.read_table((folder / "data").path, filesystem=folder.fs)  # hive partition from the folder name
    assert sorted(data.column("id").to_pylist()) == [1, 2, 3] and set(data.column("status").to_pylist()) == {"kept"}


def test_credentials_in_a_uri_are_refused_without_echoing_them(s3_server):
    _, secret, _ = s3_server
    with pytest.raises(ConfigError) as err:
        Folder(f"s3://AKIAEXAMPLE:{secret}@runs/x")
    assert secret not in str(err.value) and "AWS_ACCESS_KEY_ID" in str(err.value)
    ok = Folder("s3://runs/y")
    assert secret not in ok.uri and secret not in repr(ok)
