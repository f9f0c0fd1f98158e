"""`scalequest eval` end to end on the tiny random model: the CLI on GSM8K's first items (an in-process vLLM engine
with the solver's settings), and run_eval on a custom Parquet benchmark with k samples through the session's
engine. The reported numbers are checked against the per-item samples file they come from."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.evaluation.run import run_eval


def read_samples(folder, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples" / f"{name}.jsonl").read_text().splitlines()]


def test_custom_benchmark_with_k_samples(tiny_llm, tiny_model, tmp_path):
    data = tmp_path / "mine.parquet"
    pq.write_table(pa.table({"prompt": ["What is 2+2?", "What is 3*3?", "Half of 1?"],
                             "final": ["4", "9", "\\frac12"], "level": [1, 2, 2]}), data)
    cfg = load_config("tiny", [*tiny_llm, f"eval.output_dir={tmp_path / 'evals'}", "eval.samples=3",
                               "eval.batch_size=1",  # one question per batch, over eval.concurrency=2 actors
                               "eval.sampling.temperature=1.0", "eval.sampling.max_tokens=8",
                               "eval.benchmarks.1.name=mine", f"eval.benchmarks.1.path={data}",
                               "eval.benchmarks.1.question_field=prompt", "eval.benchmarks.1.answer_field=final"])
    folder, results = run_eval(cfg, str(tiny_model), ["mine"])  # an engine actor; 2 Ray Data actors call it
    mine = results["benchmarks"]["mine"]
    rows = read_samples(folder, "mine")
    # one question per batch over 2 actors: the rows still come back in file order, each with its own gold
    assert [r["gold"] for r in rows] == ["4", "9", "\\frac12"] and all(len(r["answers"]) == 3 for r in rows)
    assert [r["index"] for r in rows] == [0, 1, 2] and [r["question"] for r in rows][0] == "What is 2+2?"
    assert mine["questions"] == 3 and mine["samples"] == 3 and {"pass@1", "pass@3", "majority@3"} <= set(mine)
    assert mine["pass@1"]["value"] == pytest.approx(sum(sum(r["correct"]) / 3 for r in rows) / 3)
    assert mine["no_boxed_answer"] == sum(x is None for r in rows for x in r["extracted"]) / 9
    assert list(mine["by_level"]) == ["1", "2"] and mine["by_level"]["2"]["questions"] == 2
    assert json.loads((folder / "results.json").read_text())["model"]["path"] == str(tiny_model)
    assert "| mine | 3 |" in (folder / "results.md").read_text()


def test_unknown_benchmark_and_greedy_k_are_refused(tiny_llm, tiny_model, tmp_path):
    cfg = load_config("tiny", tiny_llm)
    with pytest.raises(ConfigError, match=r"--benchmarks: \['aime'\] are not in eval.benchmarks .*'gsm8k', 'math'"):
        run_eval(cfg, str(tiny_model), ["aime"])
    with pytest.raises(ConfigError, match=r"samples 4 with sampling.temperature 0"):
        load_config("tiny", ["eval.samples=4"])
    with pytest.raises(ConfigError, match=r"--model: no model folder at '.*/nope'"):
        run_eval(cfg, str(tmp_path / "nope"), ["gsm8k"])


@pytest.mark.slow
def test_cli_eval_on_gsm8k_prints_a_table_with_intervals(tiny_llm, tiny_model, shared_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "scalequest.cli", "eval", "--config", "tiny", "--model", str(tiny_model),
         "--benchmarks", "gsm8k", "--limit", "4", *tiny_llm, "eval.sampling.max_tokens=8",
         f"eval.output_dir={tmp_path}"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| gsm8k | 4 |" in done.stdout and "% ± " in done.stdout, done.stdout
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    results = json.loads((folder / "results.json").read_text())
    gsm8k = results["benchmarks"]["gsm8k"]
    assert gsm8k["questions"] == 4 and gsm8k["file"] == "../shared/data/gsm8k/test.jsonl"
    rows = [json.loads(x) for x in (folder / "samples" / "gsm8k.jsonl").read_text().splitlines()]
    assert [r["gold"] for r in rows][:1] == ["18"]  # Janet's ducks
    assert gsm8k["pass@1"]["value"] == pytest.approx(sum(r["correct"][0] for r in rows) / 4)
