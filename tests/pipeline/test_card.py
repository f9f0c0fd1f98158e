"""The run folder's dataset card, plots, `datasets` loading and `scalequest publish` (Ray-free: a run folder made
of real shards and the real report builder)."""

import json

import pyarrow as pa
import pytest
import yaml

from scalequest.cli import main
from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.pipeline.card import write_card
from scalequest.pipeline.publish import publish
from scalequest.pipeline.report import build_report
from scalequest.pipeline.run_dir import write_config
from scalequest.pipeline.shards import write_atomic
from scalequest.schema import output_schema


def _row(i, **kw):
    base = dict(id=i, status="kept", generator="g1" if i % 2 else "g2", question=f"What is {i} + {i}? Explain.",
                response=f"{i} + {i} = \\boxed{{{2 * i}}}", final_answer=str(2 * i), difficulty=0.1 * (i % 10),
                reward=0.5 + i / 100, agreement=0.75, num_responses=4, question_tokens=9, judge_tokens=20,
                response_tokens=30, question_hash=f"h{i}", seed=i, config_hash="abc")
    return base | kw


@pytest.fixture
def run_dir(tmp_path, shared_data):
    cfg = load_config("tiny", [f"decontam.benchmarks=[{{path: {shared_data}/gsm8k/test.jsonl, name: gsm8k_test}}]",
                               "card.license=cc-by-4.0", "card.tags=[demo]"])
    run = tmp_path / "tiny-run"
    run.mkdir()
    write_config(run, cfg)
    rows = [_row(i) for i in range(6)] + [
        _row(6, status="rejected", reject_stage="decontam",
             reject_reason="contaminated: gsm8k_test item 3 (9 of 30 13-grams shared)"),
        _row(7, status="rejected", reject_stage="near_dup", reject_reason="near-duplicate of id 2 (Jaccard ~0.91)"),
        _row(8, status="rejected", reject_stage="dedup", reject_reason="duplicate of an earlier question")]
    table = pa.Table.from_pylist(rows, schema=output_schema())
    for status in ("kept", "rejected"):
        part = table.filter(pa.compute.equal(table["status"], status)).drop_columns(["status"])
        write_atomic(part, run / "data" / f"status={status}" / "part-0.parquet")
    report = build_report(run / "data", {}, 10.0, [], {"config_hash": cfg.config_hash()}, None, ["gsm8k_test"])
    (run / "summary.json").write_text(json.dumps(report))
    write_card(run, cfg, report)
    return run


def test_card_header_and_body_describe_the_run(run_dir):
    text = (run_dir / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "cc-by-4.0" and header["size_categories"] == ["n<1K"]
    assert header["tags"] == ["math", "synthetic", "scalequest", "demo"]
    assert header["configs"] == [{"config_name": "default",
                                  "data_files": [{"split": "train", "path": "data/status=kept/*.parquet"}]}]
    assert "**6 kept pairs** of 9 candidates" in text
    assert "| gsm8k_test | `" in text and "test.jsonl` | 1 |" in text
    assert "Exact duplicates removed (normalized text): 1; near-duplicates removed" in text and "…): 1" not in text
    assert "| decontam | 9 | 8 | 1 |" in text
    assert "```yaml\nname: tiny" in text and "smollm2-135m-instruct" in text


def test_plots_are_pngs_linked_from_the_card(run_dir):
    text = (run_dir / "README.md").read_text()
    for name in ("funnel", "question_length", "difficulty", "reward"):
        png = run_dir / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"(plots/{name}.png)" in text


def test_datasets_loads_the_kept_split_with_its_types(run_dir, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(run_dir.parent / "hf-cache"))
    pairs = datasets.load_dataset(str(run_dir), split="train")
    assert sorted(pairs["id"]) == list(range(6))
    f = pairs.features
    assert (f["id"].dtype, f["question"].dtype, f["reward"].dtype, f["solvable"].dtype) == (
        "int64", "string", "float64", "bool")


def test_publish_dry_run_lists_card_plots_and_kept_shards_only(run_dir, capsys):
    files = publish(run_dir, "me/demo", dry_run=True)
    assert files[:3] == ["README.md", "config.yaml", "summary.json"]
    assert "data/status=kept/part-0.parquet" in files and not any("rejected" in f for f in files)
    assert {f for f in files if f.startswith("plots/")} == {f"plots/{n}.png" for n in
                                                           ("funnel", "question_length", "difficulty", "reward")}
    assert "would upload 8 files" in capsys.readouterr().out
    assert "data/status=rejected/part-0.parquet" in publish(run_dir, "me/demo", dry_run=True, include_rejected=True)


def test_publish_without_a_token_says_how_to_get_one(run_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf-home"))
    assert main(["publish", str(run_dir), "--repo", "me/demo"]) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token — set HF_TOKEN" in err and "--dry-run" in err


def test_publish_and_card_refuse_folders_that_are_not_finished_runs(run_dir, tmp_path):
    (run_dir / "README.md").unlink()
    with pytest.raises(ConfigError, match=r"no README.md in .* `scalequest card "):
        publish(run_dir, "me/demo", dry_run=True)
    assert main(["card", str(run_dir)]) == 0 and (run_dir / "README.md").is_file()
    assert main(["card", str(tmp_path)]) == 2  # not a run folder
