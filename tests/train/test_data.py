import logging

import pytest

from scalequest.errors import ConfigError
from scalequest.train.data import load_questions


def test_load_questions_reads_gsm8k_jsonl_and_math_parquet_in_source_order(gsm8k_file, math_file, questions):
    q = questions
    assert load_questions([str(gsm8k_file), str(math_file)]) == [q[0], q[2], q[1], q[3]]


def test_load_questions_drops_duplicates_empty_and_non_text_rows_and_logs_each_count(
        tmp_path, caplog, questions, jsonl_writer):
    rows = [
        {"question": f"  {questions[0]}\n"},          # kept, stripped
        {"question": questions[0].upper()},           # duplicate after normalization (casefold)
        {"question": "   "},                          # empty
        {"question": ""},                             # empty
        {"question": None},                           # non-text
        {"question": 42},                             # non-text
        {"question": ["a list"]},                     # non-text
        {"problem": questions[1]},                    # no `question` key: non-text
    ]
    path = jsonl_writer(tmp_path / "train.jsonl", rows)
    with caplog.at_level(logging.INFO, logger="scalequest.train.data"):
        assert load_questions([str(path)]) == [questions[0]]
    line = next(r.getMessage() for r in caplog.records if str(path) in r.getMessage())
    assert "8 rows, kept 1" in line
    assert "'duplicate': 1" in line and "'empty': 2" in line and "'non-text': 4" in line


def test_load_questions_drops_duplicates_across_sources(tmp_path, gsm8k_file, questions, jsonl_writer):
    more = jsonl_writer(tmp_path / "more" / "train.jsonl", [{"question": questions[2] + "  "}, {"question": "New?"}])
    assert load_questions([str(gsm8k_file), str(more)]) == [questions[0], questions[2], "New?"]


def test_load_questions_missing_path_names_it(tmp_path):
    missing = tmp_path / "nowhere" / "train.jsonl"
    with pytest.raises(ConfigError, match=f"no file at '{missing}'"):
        load_questions([str(missing)])


@pytest.mark.parametrize("name", ["test.jsonl", "gsm8k_test.parquet", "MATH-Test.jsonl"])
def test_load_questions_refuses_benchmark_test_files_even_when_present(tmp_path, name, questions, jsonl_writer):
    path = jsonl_writer(tmp_path / name, [{"question": questions[0]}])
    with pytest.raises(ConfigError, match="benchmark test split"):
        load_questions([str(path)])


def test_load_questions_refuses_the_shared_test_sets(shared_data):
    with pytest.raises(ConfigError, match="test split"):
        load_questions([str(shared_data / "gsm8k" / "train.jsonl"), str(shared_data / "math" / "test.jsonl")])


def test_load_questions_with_only_empty_rows_is_an_error_not_an_empty_set(tmp_path, jsonl_writer):
    path = jsonl_writer(tmp_path / "train.jsonl", [{"question": " "}, {"question": None}])
    with pytest.raises(ConfigError, match="no usable questions in"):
        load_questions([str(path)])


def test_load_questions_without_a_question_column_names_the_columns_found(tmp_path, jsonl_writer):
    path = jsonl_writer(tmp_path / "train.jsonl", [{"text": "hello"}])
    with pytest.raises(ConfigError, match=r"no question column .*'text'"):
        load_questions([str(path)])


def test_load_questions_skips_lines_that_are_not_json_objects(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"question": "What is 1+1?"}\nnot json\n[1, 2]\n\n')
    assert load_questions([str(path)]) == ["What is 1+1?"]


def test_load_questions_max_questions_keeps_a_seeded_subset_from_every_source(tmp_path, jsonl_writer):
    a = jsonl_writer(tmp_path / "a" / "train.jsonl", [{"question": f"A question {i}?"} for i in range(50)])
    b = jsonl_writer(tmp_path / "b" / "train.jsonl", [{"problem": f"B problem {i}?"} for i in range(50)])
    got = load_questions([str(a), str(b)], max_questions=20)
    assert len(got) == 20 and got == load_questions([str(a), str(b)], max_questions=20)
    assert any(q.startswith("A") for q in got) and any(q.startswith("B") for q in got)


def test_load_questions_unknown_hf_dataset_id_is_a_config_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ConfigError, match="cannot load Hugging Face dataset 'nobody/no-such-dataset'"):
        load_questions(["nobody/no-such-dataset"])


def test_load_questions_on_shared_gsm8k_and_math_train_gives_about_15k(shared_data):
    got = load_questions([str(shared_data / "gsm8k" / "train.jsonl"), str(shared_data / "math" / "train.jsonl")])
    assert 14_000 < len(got) <= 7_473 + 7_500
    assert len({q.casefold() for q in got}) == len(got)
