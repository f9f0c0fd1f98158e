"""Exact resume. A tiny-random-model run (every stage, difficulty on the tiny scorer) is killed with SIGKILL once
its first shards are on disk and resumed with `--resume`: every id 0..N-1 ends on disk exactly once, the shards
written before the kill are byte-for-byte unchanged, dedup holds across the stop, and the difficulty threshold
stored by the first execution decides both executions' rows. A resume with a changed output-affecting key is
refused before Ray starts, naming the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.pipeline.run import run_synthesis
from scalequest.pipeline.run_dir import new_run_dir

N = 96


def run_overrides(random_model_run, out: Path) -> list[str]:
    # one block at a time through a solver that decodes 4 sequences at a time: on a quiet machine the shards
    # still take ~10 s to appear, so the kill lands while they are being written
    return [*random_model_run(out, N, seed=5, response_tokens=96),
            "responses.concurrency=1", "responses.calls_per_actor=1", "models.smollm2.max_num_seqs=4",
            "output.progress_every_s=1"]


def synthesize(*args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "scalequest.cli", "synthesize", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def shards(out: Path) -> list[Path]:
    return sorted(out.glob("*/data/status=*/part-*.parquet"))


def _kill(procs) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.ray
@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_every_id_exactly_once(random_model_run, tmp_path):
    out = tmp_path / "runs"
    first = synthesize("--config", "tiny", *run_overrides(random_model_run, out), log=tmp_path / "1.log")
    orphans = []
    try:
        deadline = time.time() + 600
        while not shards(out) and time.time() < deadline:
            assert first.poll() is None, f"the run ended early:\n{(tmp_path / '1.log').read_text()[-3000:]}"
            time.sleep(0.05)
        assert shards(out), "no shard on disk within 600 s"
        orphans = psutil.Process(first.pid).children(recursive=True)  # its local Ray: it outlives the driver
        first.send_signal(signal.SIGKILL)
        first.wait()
        [run_dir] = [p for p in out.iterdir() if p.is_dir()]
        before = {p: digest(p) for p in shards(out)}
        threshold = (run_dir / "difficulty_threshold.json").read_text()
        on_disk = sum(pq.read_metadata(p).num_rows for p in before)
        assert 0 < on_disk < N, "the kill came after the run had finished"

        # resumed while the killed run's Ray may still finish a block: the resume's claim stops its writes. Keys
        # that change how a run executes, not its rows, may differ: the resume decodes 128 sequences at a time
        second = synthesize("--resume", str(run_dir), "responses.calls_per_actor=8", "models.smollm2.max_num_seqs=128",
                            log=tmp_path / "2.log")
        try:
            assert second.wait(timeout=600) == 0, (tmp_path / "2.log").read_text()[-3000:]
        finally:
            _kill(psutil.Process(second.pid).children(recursive=True) if second.poll() is None else [])
    finally:
        _kill(orphans)
    log = (tmp_path / "2.log").read_text()
    resumed = int(re.search(rf"resuming: (\d+) of {N} candidates on disk, (\d+) to make", log).group(1))
    assert on_disk <= resumed < N, log[-3000:]
    assert f"progress: {N}/{N} candidates (100%)" in log

    rows = pq.read_table(run_dir / "data").to_pylist()
    ids = sorted(r["id"] for r in rows)
    assert ids == list(range(N)), f"missing {set(range(N)) - set(ids)}, repeated {len(ids) - len(set(ids))}"
    assert {p: digest(p) for p in before} == before, "a shard written before the kill changed"
    passed_dedup = [r["question_hash"] for r in rows if r["question_hash"]
                    and r["reject_stage"] not in ("generate", "language", "question_type", "dedup")]
    assert len(passed_dedup) == len(set(passed_dedup)), "a question passed dedup twice across the stop"
    assert (run_dir / "difficulty_threshold.json").read_text() == threshold
    cuts = json.loads(threshold)["thresholds"]
    scored = [r for r in rows if r["difficulty"] is not None and r["reject_stage"] in ("difficulty", "responses")]
    assert scored and all((r["reject_stage"] == "difficulty") == (r["difficulty"] < cuts[r["generator"]])
                          for r in scored)
    report = json.loads((run_dir / "summary.json").read_text())
    assert report["candidates"] == N and report["resumed_with"] == resumed
    # a SIGKILL gives the killed execution no chance to record its engine time (Ctrl-C and failures do)
    assert report["cost"]["executions"] == 1


def test_resume_with_a_changed_output_key_is_refused_before_ray_naming_the_key(tiny_llm, tmp_path):
    cfg = load_config("tiny", [*tiny_llm, f"output.dir={tmp_path}"])
    run_dir = new_run_dir(cfg)
    changed = load_config("tiny", [*tiny_llm, f"output.dir={tmp_path}", "seed=9", "responses.n=2",
                                   "generate.concurrency=1"])
    with pytest.raises(ConfigError, match=r"responses\.n: 4 in the run, 2 now; seed: 0 in the run, 9 now — "):
        run_synthesis(changed, resume=run_dir)
    import ray

    assert not ray.is_initialized()


def test_resume_of_a_folder_that_is_no_run_names_the_way_out(tiny_llm, tmp_path):
    with pytest.raises(ConfigError, match=r"no config\.yaml there — pass the folder of an earlier run"):
        run_synthesis(load_config("tiny", tiny_llm), resume=tmp_path)


@pytest.mark.ray
@pytest.mark.slow
def test_ctrl_c_stops_cleanly_prints_the_resume_command_and_leaves_nothing(random_model_run, tmp_path,
                                                                           no_shm_left):
    out = tmp_path / "runs"
    run = synthesize("--config", "tiny", *run_overrides(random_model_run, out), log=tmp_path / "1.log")
    no_shm_left.watch(run.pid)
    try:
        deadline = time.time() + 600
        while not shards(out) and time.time() < deadline and run.poll() is None:
            time.sleep(0.05)
        ray_procs = psutil.Process(run.pid).children(recursive=True)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 130, (tmp_path / "1.log").read_text()[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
    [run_dir] = [p for p in out.iterdir() if p.is_dir()]
    log = (tmp_path / "1.log").read_text()
    assert f"resume with: scalequest synthesize --resume {run_dir}" in log
    time.sleep(5)  # Ray's own processes end a moment after the driver
    alive = [p for p in ray_procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {[p.name() for p in alive]}"
    no_shm_left()
    assert (run_dir / "executions.jsonl").is_file(), "a stopped execution records its engine time"
