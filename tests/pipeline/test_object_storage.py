"""A run folder on object storage: `output.dir=s3://…` against a loopback S3 server (moto) that the test starts,
with the credentials only in the standard AWS environment variables. The tiny random model's run is written there
(shards, report, threshold, cost, card, plots), read back with `ray.data.read_parquet` and pyarrow, then resumed with
`scalequest synthesize --resume s3://…` after a shard was lost and a torn upload left behind: every id ends there
exactly once, the other shards are unchanged; `scalequest card` rewrites its card there; the credentials are in no
file and no log."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.pipeline.preflight import preflight
from scalequest.pipeline.storage import Folder

N = 24


def shard_bytes(run: Folder) -> dict[str, bytes]:
    return {f.relative_to(run): f.read_bytes() for f in (run / "data").files()}


@pytest.mark.ray
@pytest.mark.slow
def test_a_run_on_s3_is_written_read_back_and_resumed_without_leaking_credentials(
        s3_server, random_model_run, caplog):
    import pyarrow.parquet as pq
    import ray

    from scalequest.pipeline.run import run_synthesis

    _, secret, access_key = s3_server
    cfg = load_config("tiny", random_model_run("s3://runs/synth", N, seed=7, response_tokens=8))
    caplog.set_level(logging.INFO)
    run = run_synthesis(cfg)

    assert run.uri.startswith("s3://runs/synth/") and not run.local
    with pytest.raises(TypeError, match="object storage"):
        os.fspath(run)
    names = {f.relative_to(run) for f in run.files()}
    assert {"config.yaml", "summary.json", "summary.txt", "difficulty_threshold.json", "executions.jsonl",
            "README.md", "plots/funnel.png", "writer"} <= names
    report = json.loads((run / "summary.json").read_text())
    assert report["candidates"] == N and report["run_dir"] == run.uri
    table = pq.read_table((run / "data").path, filesystem=run.fs)  # pyarrow, hive partitions from the folder names
    assert sorted(table.column("id").to_pylist()) == list(range(N))
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        ds = ray.data.read_parquet((run / "data").path, filesystem=run.fs)  # hive partitions by default
        assert sorted(ds.to_pandas()["id"]) == list(range(N)) and ds.count() == table.num_rows
    finally:
        ray.shutdown()
    assert len(shard_bytes(run)) >= 3, "blocks of 8 ids: several shards, so one can be lost below"

    # a stop that lost one shard and left a torn upload behind: the resume remakes exactly those ids
    before = shard_bytes(run)
    lost = max(before)  # the shard holding the highest first id of its status
    lost_ids = (run / lost).read_parquet(["id"]).column("id").to_pylist()
    (run / lost).fs.delete_file((run / lost).path)
    (run / "data" / "status=rejected" / ".part-000000000099.parquet.1a2b3c4d.tmp").write_bytes(b"PAR1 half")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "scalequest.cli", "synthesize", "--resume", run.uri], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"kept pairs:     {run.uri}/data/status=kept" in done.stdout
    after = shard_bytes(run)
    assert all(after[name] == data for name, data in before.items() if name != lost), "earlier shards changed"
    ids = sorted(pq.read_table((run / "data").path, filesystem=run.fs, columns=["id"]).column("id").to_pylist())
    assert ids == list(range(N))
    again = json.loads((run / "summary.json").read_text())
    assert again["resumed_with"] == N - len(lost_ids) and again["cost"]["executions"] == 2
    assert [f.relative_to(run) for f in (run / "set_aside").files()] == [
        "set_aside/status=rejected/.part-000000000099.parquet.1a2b3c4d.tmp"]

    # `scalequest card` rewrites the card (and plots) in place
    from scalequest.cli import main

    (run / "README.md").fs.delete_file((run / "README.md").path)
    assert main(["card", run.uri]) == 0 and (run / "README.md").read_text().startswith("---\nlicense:")

    # the credentials: in no file of the run folder, in no log, and not part of the config hash
    for f in run.files():
        data = f.read_bytes()
        assert secret.encode() not in data and access_key.encode() not in data, f.uri
    for text in (caplog.text, done.stdout, done.stderr):
        assert secret not in text and access_key not in text
    assert load_config(run / "config.yaml").config_hash() == cfg.config_hash()


def test_preflight_names_a_bucket_it_cannot_write_without_echoing_credentials(s3_server, tiny_llm):
    _, secret, _ = s3_server
    cfg = load_config("tiny", [*tiny_llm, "output.dir=s3://no-such-bucket/runs"])
    with pytest.raises(ConfigError, match=r"output\.dir: cannot write to 's3://no-such-bucket/runs'.*bucket exists"
                                          r".*AWS_ACCESS_KEY_ID") as err:
        preflight(cfg)
    assert secret not in str(err.value)
    preflight(load_config("tiny", [*tiny_llm, "output.dir=s3://runs/ok"]))  # a writable bucket passes
    assert Folder("s3://runs/ok").files() == [], "the probe object is deleted"
