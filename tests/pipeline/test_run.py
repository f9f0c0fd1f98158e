"""End to end on local Ray: the synthesis pipeline from an empty start to Parquet + run report.

`test_pipeline_end_to_end_on_tiny_random_model` runs every operator on a random-weight model (its output is
garbage, so rows end as rejects with reasons: the plumbing, accounting and output contract are what is checked).
`test_tiny_config_produces_kept_pairs` (slow) runs the packaged tiny config on the real SmolLM2-135M.
"""

import json
import os
import string
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scalequest.config import load_config
from scalequest.pipeline.run import run_synthesis
from scalequest.schema import FUNNEL_STAGES, output_schema


def _read_all(run_dir):
    import ray
    import ray.data

    table = pq.read_table(run_dir / "data")
    started = not ray.is_initialized()
    try:
        assert ray.data.read_parquet(str(run_dir / "data")).count() == table.num_rows
    finally:
        if started:  # ray.data starts a default Ray (all cores): a later run in this process would join it
            ray.shutdown()
    return table


def _check_funnel(report, n):
    funnel = report["funnel"]
    assert [f["stage"] for f in funnel][: len(FUNNEL_STAGES)] == list(FUNNEL_STAGES)
    assert funnel[0]["in"] == n == report["candidates"]
    for prev, cur in zip(funnel, funnel[1:]):
        assert cur["in"] == prev["kept"]
    for f in funnel:
        assert f["in"] == f["kept"] + f["rejected"] and f["rejected"] == sum(f["reasons"].values())
    assert funnel[-1]["kept"] == report["kept"]


@pytest.mark.ray
def test_pipeline_end_to_end_on_tiny_random_model(tiny_model, tiny_llm, tiny_scorer_model, tmp_path, no_shm_left,
                                                   caplog):
    n = 24
    stops = list(string.ascii_letters) + ["\ufffd"]  # a random model only ends a "question" on these
    cfg = load_config("tiny", [
        *tiny_llm, f"num_candidates={n}", f"output.dir={tmp_path}", "seed=3",
        "generators.0.hint=\"\"", f"generators.0.sampling.stop={json.dumps(stops)}",
        "generators.0.sampling.max_tokens=16", "language.enabled=false", "question_type.enabled=false", "solvability.enabled=false",
        "responses.n=2", "responses.sampling.max_tokens=8", "responses.force_answer=false", "ray.num_cpus=8",
        f"difficulty.model_path={tiny_scorer_model}", "difficulty.drop_easiest_share=0.5",
        "output.progress_every_s=1",
    ])
    no_shm_left.watch(ray_only=True)
    cpus = os.sched_getaffinity(0)
    with caplog.at_level("INFO", logger="scalequest.pipeline"):  # .progress ticks, .run the final line
        run_dir = Path(run_synthesis(cfg))  # a local run folder
    no_shm_left()
    # Ray's daemons ran on the last CPU (ray.pin_daemons); the engine took every CPU back; the driver has its own
    assert os.sched_getaffinity(0) == cpus
    [loaded] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine smollm2 loaded")]
    assert loaded.endswith(f"niceness 0, CPUs {','.join(map(str, sorted(cpus)))}"), loaded
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress: ")]
    assert any(x.endswith("| loading engine(s): smollm2") for x in lines), lines  # a line while the engine loads
    assert lines[-1].startswith(f"progress: {n}/{n} candidates (100%)") and "loading" not in lines[-1]

    table = _read_all(run_dir)
    assert table.num_rows == n and sorted(table.column("id").to_pylist()) == list(range(n))
    assert set(output_schema().names) <= set(table.column_names)
    rows = table.to_pylist()
    assert all(r["status"] == "rejected" and r["reject_stage"] and r["reject_reason"] for r in rows)
    reached = [r for r in rows if r["reject_stage"] == "responses"]
    assert reached, "some questions must end at end-of-turn and reach the solver"
    assert all(r["reject_reason"] == "no response with a \\boxed{} answer (of 2)" for r in reached)
    assert all(r["response_tokens"] > 0 and r["question_hash"] for r in reached)
    assert {r["generator_model"] for r in rows} == {str(tiny_model)}
    assert {r["config_hash"] for r in rows} == {cfg.config_hash()}

    report = json.loads((run_dir / "summary.json").read_text())
    _check_funnel(report, n)
    assert report["kept"] == 0 and report["tokens_generated"]["total"] > 0
    difficulty = next(f for f in report["funnel"] if f["stage"] == "difficulty")
    assert difficulty["in"] >= 2 and difficulty["rejected"] == int(difficulty["in"] * 0.5)
    assert set(difficulty["reasons"]) == {"too easy"}
    assert all(r["difficulty"] is not None for r in rows if r["reject_stage"] in ("difficulty", "responses"))
    assert not any("difficulty" in s for s in report["skipped_stages"])
    assert "generate" in report["stage_time"] and (run_dir / "summary.txt").read_text().startswith("ScaleQuest run")
    assert load_config(run_dir / "config.yaml").config_hash() == cfg.config_hash()
    [cut] = json.loads((run_dir / "difficulty_threshold.json").read_text())["thresholds"].values()
    scored = [r for r in rows if r["reject_stage"] in ("difficulty", "responses")]
    assert all((r["reject_stage"] == "difficulty") == (r["difficulty"] < cut) for r in scored)
    assert report["resumed_with"] == 0 and report["set_aside"] == []
    assert report["cost"]["executions"] == 1 and report["cost"]["engine_s_per_kept"]["smollm2"] > 0
    assert report["contamination"] == {"gsm8k_test": 0, "math_test": 0}  # a random model copies no benchmark
    assert "decontam" in report["stage_time"] and "near_dup" in report["stage_time"]
    assert set(report["duplicates"]) == {"exact", "near"}
    assert (run_dir / "README.md").read_text().startswith("---\nlicense:") and (run_dir / "plots/funnel.png").is_file()


def test_packaged_configs_fit_their_local_ray():
    from scalequest.pipeline.build import cpu_reservation

    cfg = load_config("tiny")
    need = cpu_reservation(cfg)
    assert need["engines"] == 1 and need["read/write tasks"] == 1
    assert 2 < sum(need.values()) <= cfg.ray.num_cpus
    with_scorer = load_config("tiny", ["difficulty.model_path=x", "difficulty.num_cpus=2"])
    assert sum(cpu_reservation(with_scorer).values()) == pytest.approx(sum(need.values()) + 2)


@pytest.mark.ray
def test_run_on_a_ray_too_small_for_the_pipeline_fails_fast_and_names_the_fix(tiny_llm, tmp_path):
    import math

    import ray

    from scalequest.errors import ConfigError
    from scalequest.pipeline.build import cpu_reservation

    cfg = load_config("tiny", [*tiny_llm, f"output.dir={tmp_path}"])
    ray.init(num_cpus=2, include_dashboard=False)  # e.g. started earlier by a ray.data call in a notebook
    try:
        need = sum(cpu_reservation(cfg).values())
        with pytest.raises(ConfigError, match=rf"holds {need:g} Ray CPUs .* this Ray has 2 — set "
                                              rf"ray\.num_cpus={math.ceil(need)} or more"):
            run_synthesis(cfg)
        assert ray.is_initialized(), "a Ray the run did not start is left running"
    finally:
        ray.shutdown()
    assert not list(tmp_path.iterdir()), "no run folder for a run that never started"


@pytest.mark.ray
def test_engine_that_fails_to_load_stops_the_run_by_name_and_writes_no_row(tiny_llm, tmp_path):
    """The stage actors start while the engine loads; when the load fails, the run stops with the model's key and
    vLLM's reason, and the rows that waited on it are not written as rejects (a resume makes them)."""
    from scalequest.errors import EngineUnavailable

    cfg = load_config("tiny", [
        *tiny_llm, "models.smollm2.max_model_len=4096",  # over the tiny model's 2048 positions: vLLM refuses it
        "num_candidates=8", f"output.dir={tmp_path}", "language.enabled=false", "question_type.enabled=false",
        "decontam.enabled=false", "near_dup.enabled=false", "ray.num_cpus=8"])
    with pytest.raises(EngineUnavailable, match=r"models\.smollm2: the vLLM engine for .* failed to load: "
                                                r".*max_model_len.* — fix the model's settings"):
        run_synthesis(cfg)
    [run_dir] = tmp_path.iterdir()
    assert not list(run_dir.rglob("*.parquet")), "rows that never reached an engine were written"


@pytest.mark.ray
@pytest.mark.slow
def test_tiny_config_produces_kept_pairs(tmp_path, shared_data):

    from scalequest.engines.prepare import prepare_model
    from scalequest.stages.language import prose_words

    models_dir = Path(__file__).resolve().parents[2] / "models"  # shared with the README's tiny run
    model = prepare_model("smollm2", models_dir)
    n = 48  # tiny.yaml keeps a pair only when half its responses agree: ~1 in 8 candidates
    cfg = load_config("tiny", [f"models.smollm2.path={model}", f"num_candidates={n}", f"output.dir={tmp_path}"])
    run_dir = Path(run_synthesis(cfg))  # a local run folder

    report = json.loads((run_dir / "summary.json").read_text())
    _check_funnel(report, n)
    kept = [r for r in _read_all(run_dir).to_pylist() if r["status"] == "kept"]
    assert kept, f"the tiny run kept nothing: {report['funnel']}"
    assert len({r["question_hash"] for r in kept}) == len(kept), "exact duplicates among kept rows"
    assert set(report["contamination"]) == {"gsm8k_test", "math_test"}
    import datasets

    from scalequest.pipeline.publish import publish

    pairs = datasets.load_dataset(str(run_dir), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(pairs["id"]) == sorted(r["id"] for r in kept)
    files = publish(run_dir, "me/tiny", dry_run=True)
    assert "README.md" in files and any(f.startswith("data/status=kept/") for f in files)
    for r in kept:
        assert r["question"].strip() and "\\boxed{" in r["response"] and r["final_answer"]
        # formula-dominated questions pass on the script rule whatever fastText guesses (see FilterLanguage)
        assert (r["language"] == "en" or prose_words(r["question"]) < cfg.language.min_prose_words)
        assert r["solvable"] is True
        assert cfg.select.min_agreement <= r["agreement"] <= 1 and r["num_answered"] >= 1
        assert r["reject_reason"] is None


def test_the_pipeline_never_materializes_or_pulls_the_candidate_set_into_the_driver():

    import scalequest

    root = Path(scalequest.__file__).parent
    found = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if ".materialize(" in line or ".take_all(" in line or ".to_pandas(" in line]
    assert not found, f"whole-dataset pulls: {found}"
