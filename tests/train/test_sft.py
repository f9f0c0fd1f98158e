"""Solver SFT without Ray: a run folder's kept pairs (and extra files) become TRL prompt/completion rows whose
prompt is exactly the solver's prompt in the pipeline and in `scalequest eval`; missing data is refused with the
fix. The Ray Train run (2 workers, DeepSpeed ZeRO-2) → vLLM → `scalequest eval` is in test_ray_train.py."""

import pytest

from scalequest.config import ResponsesConfig, load_config
from scalequest.engines.chat import ChatFormatter
from scalequest.errors import ConfigError
from scalequest.stages.responses import GenerateResponses
from scalequest.train.sft import build_sft_job, end_of_turn, file_pairs, kept_pairs, sft_rows


def test_kept_pairs_are_the_kept_rows_in_id_order(synth_run):
    pairs = kept_pairs([str(synth_run)])
    assert [q for q, _ in pairs] == [f"What is {i} + {i}?" for i in (0, 2, 3, 5)]
    assert pairs[1][1] == "2 + 2 = 4. The answer is $\\boxed{4}$."


def test_rows_use_the_solvers_prompt_and_end_the_response_with_end_of_turn(tiny_model, synth_run):
    from transformers import AutoTokenizer

    formatter = ChatFormatter(str(tiny_model))
    eos = end_of_turn(AutoTokenizer.from_pretrained(tiny_model))
    assert eos == "<|im_end|>"
    responses = ResponsesConfig(model="smollm2")
    [row] = sft_rows([("What is 1 + 1?", " 2 \\boxed{2}\n")], formatter, responses.instruction, eos)
    assert row["prompt"] == GenerateResponses(responses, None, formatter).prompt("What is 1 + 1?")
    assert row["completion"] == "2 \\boxed{2}<|im_end|>"


def test_extra_files_mix_in_and_a_file_without_fields_is_named(tmp_path, jsonl_writer):
    good = jsonl_writer(tmp_path / "mine.jsonl", [{"problem": "Q1", "solution": "S1"},
                                                  {"problem": " ", "solution": "x"}])
    assert file_pairs([str(good)]) == [("Q1", "S1")]
    bad = jsonl_writer(tmp_path / "bad.jsonl", [{"text": "Q1"}])
    with pytest.raises(ConfigError, match=r"bad.jsonl' needs a question field .* its first row has \['text'\]"):
        file_pairs([str(bad)])


def test_build_sft_job_refuses_no_section_no_data_and_a_run_without_kept_pairs(tiny_model, tmp_path, synth_run):
    with pytest.raises(ConfigError, match=r"train.sft: missing — add"):
        build_sft_job(load_config("tiny", ["train.sft=null"]), [str(synth_run)])
    cfg = load_config("tiny", [f"train.sft.base_model={tiny_model}"])
    with pytest.raises(ConfigError, match=r"no data — pass --data RUN_DIR"):
        build_sft_job(cfg, [])
    empty = tmp_path / "runs" / "empty"
    empty.mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"'.*empty' has no kept pairs"):
        build_sft_job(cfg, [str(empty)])
    with pytest.raises(ConfigError, match=r"train.sft.max_length: 16 tokens do not hold even the prompt"):
        build_sft_job(load_config("tiny", [f"train.sft.base_model={tiny_model}", "train.sft.max_length=16"]),
                      [str(synth_run)])
    loop_config, _, name = build_sft_job(load_config("tiny", [f"train.sft.base_model={tiny_model}",
                                                              "train.sft.max_pairs=3"]), [str(synth_run)])
    assert len(loop_config.rows) == 3 and loop_config.hparams.max_length == 512 and "-sft-" in name
