"""Benchmark decontamination on literal batches (Ray-free): copies of GSM8K/MATH test items, whole or lightly
edited, are rejected naming the benchmark and the item; clean questions pass; bad benchmark files fail before
Ray starts, naming the key and the path."""

import json
import re

import pytest

from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.mathcheck.benchmarks import BenchmarkIndex, load_benchmarks
from scalequest.pipeline.plan import stage_plan
from scalequest.pipeline.preflight import preflight
from scalequest.stages.base import reason_kind
from scalequest.stages.decontam import DropContaminated

CLEAN = [
    "A baker makes 37 loaves of rye bread on Monday and twice as many on Tuesday. If each loaf sells for $4, "
    "how much money does the baker earn over the two days?",
    "Let $f(x) = 3x^2 - 7x + 11$. What is the smallest value of $f(x)$ over all real numbers $x$?",
    "How many positive divisors does 7,560 have?",
    "Priya walks 2.5 kilometers to the library, reads for 45 minutes, then cycles home at 15 kilometers per "
    "hour along a road that is 1 kilometer longer than her walking route. How long is she away from home?",
]


def _items(shared_data, name, field, n):
    with open(shared_data / name / "test.jsonl") as f:
        return [json.loads(line)[field] for _, line in zip(range(n), f)]


def _cfg(shared_data, **overrides):
    items = [f"decontam.benchmarks=[{{path: {shared_data / 'gsm8k/test.jsonl'}, field: question}}, "
             f"{{path: {shared_data / 'math/test.jsonl'}, field: problem}}]"]
    return load_config("tiny", items + [f"{k}={v}" for k, v in overrides.items()])


def _edits(text: str) -> list[str]:
    """Light edits of a benchmark item: one number changed, a name swapped, a sentence appended."""
    number = re.search(r"\d+", text)
    changed = text[:number.start()] + str(int(number.group()) + 3) + text[number.end():] if number else text
    return [changed, text.replace("Janet", "Maria").replace("James", "Omar"),
            text + " Give your answer as a whole number.", "  " + text.upper() + "  "]


@pytest.fixture(scope="module")
def stage(shared_data):
    cfg = _cfg(shared_data)
    return DropContaminated(cfg.decontam, load_benchmarks(cfg.decontam.benchmarks))


def test_copies_and_light_edits_of_test_items_are_rejected_naming_benchmark_and_item(stage, shared_data):
    gsm = _items(shared_data, "gsm8k", "question", 40)
    math = _items(shared_data, "math", "problem", 400)
    long_math = [(i, t) for i, t in enumerate(math) if len(t.split()) >= 30][:10]
    cases = [("gsm8k_test", i, q) for i in (0, 7, 39) for q in [gsm[i], *_edits(gsm[i])]]
    cases += [("math_test", i, q) for i, t in long_math for q in [t, *_edits(t)]]
    out = stage({"id": list(range(len(cases))), "question": [q for _, _, q in cases]})
    for (bench, item, q), st, reason in zip(cases, out["reject_stage"], out["reject_reason"]):
        assert st == "decontam", f"not rejected: {q[:80]!r}"
        assert reason.startswith(f"contaminated: {bench} item {item} ("), (reason, q[:80])
    assert {reason_kind(r) for r in out["reject_reason"]} == {"contaminated: gsm8k_test item",
                                                              "contaminated: math_test item"}


def test_exact_copy_is_named_as_exact_and_overlap_counts_shared_ngrams(stage, shared_data):
    gsm = _items(shared_data, "gsm8k", "question", 2)
    out = stage({"question": [gsm[1], gsm[1] + " Then double it."]})
    assert out["reject_reason"][0] == "contaminated: gsm8k_test item 1 (exact text)"
    shared, total = map(int, re.search(r"\((\d+) of (\d+) 13-grams shared\)", out["reject_reason"][1]).groups())
    assert 0 < shared <= total


def test_clean_questions_and_earlier_rejects_pass_unchanged(stage):
    out = stage({"question": [*CLEAN, None], "reject_stage": [None] * 4 + ["generate"],
                 "reject_reason": [None] * 4 + ["no end-of-turn"]})
    assert out["reject_reason"] == [None] * 4 + ["no end-of-turn"]
    assert out["question"][:4] == CLEAN


def test_disabled_stage_passes_everything(shared_data):
    cfg = _cfg(shared_data, **{"decontam.enabled": "false"})
    gsm = _items(shared_data, "gsm8k", "question", 1)
    assert DropContaminated(cfg.decontam, {"gsm8k_test": gsm})({"question": gsm})["reject_reason"] == [None]


def test_ngram_length_is_configurable():
    item = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    index13, index5 = BenchmarkIndex({"b": [item]}, 13), BenchmarkIndex({"b": [item]}, 5)
    probe = "zero one two three four five six"  # shares 5-grams, no 13-gram
    assert index13.match(probe) is None
    assert index5.match(probe).reason() == "contaminated: b item 0 (2 of 3 5-grams shared)"


def test_figure_code_alone_is_not_contamination():
    asy = "[asy] pen dps = linewidth(0.7) + fontsize(10); defaultpen(dps); pen ds = black; real xmin=-2.25 [/asy]"
    index = BenchmarkIndex({"math_test": [f"Find the area of the shaded region. {asy}"]}, 13)
    assert index.match(f"What is the perimeter of the triangle below? {asy}") is None


def test_the_plan_runs_decontam_between_question_type_and_dedup_when_benchmarks_are_listed(shared_data):
    names = [s.name for s in stage_plan(_cfg(shared_data))]
    assert names.index("question_type") + 1 == names.index("decontam") == names.index("dedup") - 1
    assert "decontam" not in [s.name for s in stage_plan(load_config("tiny", ["decontam.benchmarks=[]"]))]
    assert "decontam" not in [s.name for s in stage_plan(_cfg(shared_data, **{"decontam.enabled": "false"}))]


def test_missing_benchmark_file_fails_before_ray_naming_the_key_and_path(tmp_path):
    cfg = load_config("tiny", [f"decontam.benchmarks=[{{path: {tmp_path}/nope.jsonl}}]",
                               f"output.dir={tmp_path}/runs"])
    with pytest.raises(ConfigError, match=r"decontam\.benchmarks\[0\]\.path: no file at '.*nope\.jsonl'"):
        preflight(cfg)


@pytest.mark.parametrize("content, suffix, field, message", [
    ("", ".jsonl", "question", r"benchmarks\[0\]\.path: .* has no JSON object rows"),
    ('{"question": ""}\n{"question": null}\n', ".jsonl", "question", r"has no text in field 'question'"),
    ('{"problem": "x"}\n', ".jsonl", "question", r"benchmarks\[0\]\.field: 'question' is not a field .*problem"),
    ("question\nx\n", ".csv", "question", r"is not \.jsonl, \.json, \.parquet"),
])
def test_empty_or_unreadable_benchmark_is_refused(tmp_path, content, suffix, field, message):
    path = tmp_path / f"bench{suffix}"
    path.write_text(content)
    cfg = load_config("tiny", [f"decontam.benchmarks=[{{path: {path}, field: {field}}}]"])
    with pytest.raises(ConfigError, match=message):
        load_benchmarks(cfg.decontam.benchmarks)


def test_parquet_benchmark_with_its_own_name(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = "Aisha has 3 boxes of 12 pencils and gives away 7 pencils to each of her 4 friends. How many are left?"
    pq.write_table(pa.table({"prompt": [CLEAN[2], text]}), tmp_path / "aime.parquet")
    cfg = load_config("tiny", [f"decontam.benchmarks=[{{path: {tmp_path}/aime.parquet, field: prompt, name: aime}}]"])
    stage = DropContaminated(cfg.decontam, load_benchmarks(cfg.decontam.benchmarks))
    assert stage({"question": [text]})["reject_reason"] == ["contaminated: aime item 1 (exact text)"]


def test_two_benchmarks_with_one_name_are_refused(shared_data):
    with pytest.raises(ConfigError, match=r"benchmark names \['test'\] are used twice"):
        load_config("tiny", [f"decontam.benchmarks=[{{path: {shared_data}/gsm8k/test.jsonl, name: test}}, "
                             f"{{path: {shared_data}/math/test.jsonl, field: problem, name: test}}]"])
