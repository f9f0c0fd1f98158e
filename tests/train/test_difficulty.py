"""Difficulty scorer: labels (MATH level, fail rate), data reading, Spearman, the training loop in-process on a tiny
random model (parameters change, loss logged, the export loads in the pipeline's SequenceScorer) and the run."""

import json
import math

import pytest
import torch

from scalequest.config import load_config
from scalequest.engines.base import Generation, Sampling
from scalequest.errors import ConfigError
from scalequest.train.difficulty import (
    difficulty_loop,
    evaluate_difficulty,
    run_difficulty,
    score_by_length,
    spearman,
)
from scalequest.train.difficulty_labels import (
    fail_rate_labels,
    level_label,
    load_labelled,
    math_level_labels,
    read_problems,
)

MATH_ROWS = [
    {"problem": f"Compute {i} + {i}.", "level": f"Level {i % 5 + 1}", "answer": str(2 * i), "subject": "Algebra"}
    for i in range(40)
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("level", "expected"), [
    ("Level 1", 0.0), ("Level 2", 0.25), ("Level 3", 0.5), ("Level 5", 1.0), ("level 4", 0.75), (" Level 2 ", 0.25),
    (3, 0.5), ("5", 1.0), ("Level ?", None), ("Level 6", None), ("Level 0", None), ("", None), (None, None),
    (True, None), ("Level 10", None),
])
def test_level_label_maps_math_levels_to_unit_interval(level, expected):
    assert level_label(level) == expected


def test_math_level_labels_drops_unknown_levels_with_count():
    rows = [{"question": "a", "level": "Level 1"}, {"question": "b", "level": "Level ?"},
            {"question": "c", "level": "Level 5"}, {"question": "d"}]
    labelled, dropped = math_level_labels(rows)
    assert [(r["question"], r["label"]) for r in labelled] == [("a", 0.0), ("c", 1.0)]
    assert dropped == 2


def test_read_problems_reads_gsm8k_and_math_and_counts_skips(tmp_path):
    gsm = _jsonl(tmp_path / "gsm8k_train.jsonl", [
        {"question": "Tom has 3 apples and buys 1,200 more. How many?", "answer": "3 + 1200 = 1203\n#### 1,203"},
        {"question": "  ", "answer": "#### 1"},
        {"question": None, "answer": "#### 1"},
        {"question": "tom has 3 apples and buys 1,200 more.  How many?", "answer": "#### 1203"},  # duplicate
    ])
    math = _jsonl(tmp_path / "math_train.jsonl", [
        {"problem": "Find $x$ if $2x=1$.", "level": "Level 2", "answer": "\\frac{1}{2}"},
        {"problem": "Find $y$.", "level": "Level 3", "solution": "So $y=\\boxed{7}$."},
    ])
    rows, skipped = read_problems([gsm, math])
    assert [(r["question"][:8], r["gold"], r["level"]) for r in rows] == [
        ("Tom has ", "1203", None), ("Find $x$", "\\frac{1}{2}", "Level 2"), ("Find $y$", "7", "Level 3")]
    assert skipped == {"no question text": 2, "duplicate question": 1}


def test_read_problems_refuses_test_split_and_missing_file(tmp_path):
    test_file = _jsonl(tmp_path / "test.jsonl", MATH_ROWS[:2])
    with pytest.raises(ConfigError, match="benchmark test split"):
        read_problems([test_file])
    assert len(read_problems([test_file], benchmark=True)[0]) == 2
    with pytest.raises(ConfigError, match="no file at"):
        read_problems([tmp_path / "nope.jsonl"])


class ScriptedEngine:
    """Answers every prompt with the same k texts."""

    model_path = "scripted"

    def __init__(self, texts):
        self.texts, self.calls = texts, []

    def generate(self, prompts, sampling, seeds=None):
        self.calls.append((list(prompts), sampling, seeds))
        return [[Generation(t, 3, "stop") for t in self.texts] for _ in prompts]


class PlainFormatter:
    def user_prompt(self, text):
        return f"USER: {text}\nASSISTANT:"


def test_fail_rate_counts_equivalent_boxed_answers():
    engine = ScriptedEngine(["so \\boxed{0.5}", "\\boxed{1/2}", "no answer", "\\boxed{3}"])
    rates = fail_rate_labels(["half of one?", "no gold"], ["\\frac12", None], engine, PlainFormatter(), 4,
                             Sampling(temperature=0.7, max_tokens=64), seeds=[1, 2])
    assert rates == [0.5, None]
    prompts, sampling, seeds = engine.calls[0]
    assert len(prompts) == 1 and "half of one?" in prompts[0] and "\\boxed{}" in prompts[0]
    assert sampling.n == 4 and seeds == [1]


def test_fail_rate_of_tiny_random_solver_is_one(tiny_engine):
    from scalequest.engines.chat import ChatFormatter

    rates = fail_rate_labels(["What is 2+2?", "What is 3*3?"], ["4", "9"], tiny_engine,
                             ChatFormatter(tiny_engine.model_path), 3, Sampling(temperature=1.0, max_tokens=8))
    assert rates == [1.0, 1.0]


@pytest.mark.parametrize(("x", "y", "expected"), [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], 0.8207826816681233),  # scipy.stats.spearmanr's documented example (a tie)
    ([1, 2, 3], [10, 20, 30], 1.0),
    ([1, 2, 3], [3, 2, 1], -1.0),
    ([1, 1, 2, 2], [1, 2, 1, 2], 0.0),  # ties on both sides
    ([0, 0, 0.25, 0.5, 1, 1], [0.1, 0.3, 0.2, 0.5, 0.9, 0.8], 0.8827348295047495),
    ([1, 2, 3], [4, 4, 4], None),  # constant side: undefined
    ([1], [2], None),
    ([], [], None),
])
def test_spearman_matches_reference_values(x, y, expected):
    got = spearman(x, y)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_score_by_length_batches_short_texts_together_and_keeps_order():
    class LengthScorer:
        def __init__(self):
            self.seen = []

        def score(self, texts):
            self.seen = list(texts)
            return [float(len(t)) for t in texts]

    scorer = LengthScorer()
    texts = ["ccc", "a", "bb", "dddd", ""]
    assert score_by_length(scorer, texts) == [3.0, 1.0, 2.0, 4.0, 0.0]
    assert scorer.seen == ["", "a", "bb", "ccc", "dddd"]


def _loop_config(base, tmp_path, rows, **kw):
    from scalequest.config import DifficultyTrainConfig, RayTrainConfig
    from scalequest.train.difficulty import DifficultyLoop

    d = DifficultyTrainConfig(base_model=str(base), learning_rate=1e-3, max_steps=2, warmup_ratio=0.0, max_length=64,
                              per_device_batch=4, effective_batch=4, **kw)
    return DifficultyLoop(hparams=d, ray=RayTrainConfig(num_workers=1), base_model=str(base), rows=rows,
                          output_dir=str(tmp_path / "scorer"), in_process=True).model_dump()


def test_difficulty_loop_trains_and_exports_a_scorer(tiny_model, tmp_path):
    from safetensors.torch import load_file

    from scalequest.engines.scorers import SequenceScorer

    rows = [{"question": r["problem"], "label": level_label(r["level"])} for r in MATH_ROWS[:16]]
    result = difficulty_loop(_loop_config(tiny_model, tmp_path, rows))

    assert result["global_step"] == 2 and len(result["losses"]) == 2
    assert all(math.isfinite(loss) and loss >= 0 for loss in result["losses"])  # MSE: finite, non-negative
    mean = sum(r["label"] for r in rows) / len(rows)
    assert result["label_mean"] == pytest.approx(mean)  # trained on label - mean, recorded in config.json
    assert json.loads((tmp_path / "scorer" / "config.json").read_text())["scalequest_label_mean"] == pytest.approx(mean)
    before, after = load_file(tiny_model / "model.safetensors"), load_file(tmp_path / "scorer" / "model.safetensors")
    key = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(before[key].float(), after[key].float())
    assert "score.weight" in after and after["score.weight"].shape[0] == 1
    scores = SequenceScorer(str(tmp_path / "scorer"), max_length=64).score(["What is 1+1?", "Prove it."])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)


def test_difficulty_loop_with_top_layers_freezes_the_rest(tiny_model, tmp_path):
    from safetensors.torch import load_file

    rows = [{"question": r["problem"], "label": level_label(r["level"])} for r in MATH_ROWS[:8]]
    difficulty_loop(_loop_config(tiny_model, tmp_path, rows, train_top_layers=1))
    before, after = load_file(tiny_model / "model.safetensors"), load_file(tmp_path / "scorer" / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k].float(), after[k].float())}
    assert changed and all(k.startswith(("model.layers.1.", "model.norm.")) for k in changed)
    assert "model.embed_tokens.weight" not in changed


def test_evaluate_difficulty_reports_both_correlations(tiny_scorer_model, tmp_path):
    eval_file = _jsonl(tmp_path / "math_test.jsonl", MATH_ROWS + [{"problem": "x?", "level": "Level ?"}])
    holdout = [{"question": r["problem"], "label": level_label(r["level"])} for r in MATH_ROWS[:6]]
    report = evaluate_difficulty(tiny_scorer_model, eval_file, 10, holdout, max_length=64)
    assert report["eval_questions"] == 10 and report["holdout_questions"] == 6
    for key in ("spearman_math_level", "spearman_holdout_label", "spearman_math_level_length_baseline",
                "spearman_holdout_length_baseline"):
        assert report[key] is None or -1.0 <= report[key] <= 1.0
    assert set(report["eval_mean_score_by_level"]) <= {"0.00", "0.25", "0.50", "0.75", "1.00"}


def _cfg(tmp_path, base, data, **extra):
    overrides = [f"train.difficulty.base_model={base}", f"train.difficulty.data=[{data}]",
                 "train.difficulty.label_source=math_level", f"train.difficulty.eval_data={data}",
                 f"train.difficulty.output_dir={tmp_path / 'out'}", "train.difficulty.max_steps=1",
                 "train.difficulty.per_device_batch=4", "train.difficulty.effective_batch=4",
                 "train.difficulty.max_length=64", "train.difficulty.holdout_share=0.25",
                 f"train.ray.storage_path={tmp_path / 'storage'}"]
    return load_config("tiny", overrides + [f"{k}={v}" for k, v in extra.items()])


def test_load_labelled_math_level_respects_max_questions(tmp_path, tiny_model):
    data = _jsonl(tmp_path / "math_train.jsonl", MATH_ROWS + [{"problem": "odd", "level": "Level ?"}])
    rows, stats = load_labelled(_cfg(tmp_path, tiny_model, data, **{"train.difficulty.max_questions": 12}))
    assert len(rows) == 12 and all(0.0 <= r["label"] <= 1.0 for r in rows)
    assert stats["dropped_no_level"] == 1 and stats["labelled"] == 12


@pytest.mark.ray
def test_load_labelled_fail_rates_come_from_the_solvers_engine_actor(tmp_path, tiny_model, tiny_llm):
    """label_source=fail_rate end to end: the solver (a key of `models`) runs as the pipeline's engine actor
    (EngineSet) and grades k samples per question; the tiny random solver never boxes the right answer."""
    import ray

    data = _jsonl(tmp_path / "math_train.jsonl", MATH_ROWS[:4])
    cfg = load_config("tiny", [
        *tiny_llm, f"train.difficulty.base_model={tiny_model}", f"train.difficulty.data=[{data}]",
        "train.difficulty.label_source=fail_rate", "train.difficulty.solver=smollm2",
        "train.difficulty.samples_per_question=2", "train.difficulty.solver_sampling.max_tokens=4",
        f"train.ray.storage_path={tmp_path / 'storage'}"])
    had_ray = ray.is_initialized()
    rows, stats = load_labelled(cfg)
    assert len(rows) == 4 and all(r["label"] == 1.0 for r in rows), rows
    assert ray.is_initialized() == had_ray  # a Ray the engine set started is shut down with it


def test_load_labelled_refuses_an_empty_training_set(tmp_path, tiny_model):
    gsm_only = _jsonl(tmp_path / "gsm8k_train.jsonl", [{"question": "1+1?", "answer": "#### 2"}])
    with pytest.raises(ConfigError, match="no labelled questions"):
        load_labelled(_cfg(tmp_path, tiny_model, gsm_only))


@pytest.mark.parametrize("in_process", [True, pytest.param(False, marks=[pytest.mark.ray, pytest.mark.slow],
                                                           id="ray-train")])
def test_run_difficulty_writes_model_and_report(tmp_path, tiny_model, in_process, drill):
    """In this process, and on Ray Train (2 CPU workers, the CLI's default) with a worker killed after the
    checkpoint of step 1 of 2 and the restarted workers resuming from it."""
    from scalequest.engines.scorers import SequenceScorer

    data = _jsonl(tmp_path / "math_train.jsonl", MATH_ROWS[:16])
    # an effective batch of 8: 4 per worker on 2 Ray Train workers, or 4 × 2 accumulation steps in this process
    extra = {} if in_process else {**dict(o.split("=") for o in drill.overrides), "train.difficulty.max_steps": 2,
                                   "train.difficulty.save_steps": 1}
    out = run_difficulty(_cfg(tmp_path, tiny_model, data, **{"train.difficulty.effective_batch": 8}, **extra),
                         in_process=in_process)

    report = json.loads((out / "report.json").read_text())
    assert report["labels"]["train"] == 12 and report["labels"]["holdout"] == 4
    assert report["training"]["losses"]
    if in_process:
        assert report["training"]["global_step"] == 1
    else:
        drill.assert_resumed(out)
    assert report["eval_questions"] == 16 and "spearman_math_level" in report and "spearman_holdout_label" in report
    assert (out / "scalequest-config.yaml").is_file()
    assert len(SequenceScorer(str(out)).score(["What is 2+2?"])) == 1
