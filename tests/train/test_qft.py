import json
from pathlib import Path

import pytest

from scalequest.config import QFTConfig, RayTrainConfig, load_config
from scalequest.errors import ConfigError
from scalequest.train.qft import SFTLoop, build_qft_job, grad_accum_steps, qft_prompt, qft_rows, sft_args

SMOL_SYSTEM = "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>"


def test_qft_rows_put_the_prefix_in_the_prompt_and_question_plus_end_of_turn_in_the_completion():
    assert qft_rows(["What is 1+1?"], "PREFIX", "<|im_end|>") == [
        {"prompt": "PREFIX", "completion": "What is 1+1?<|im_end|>"}]


def test_qft_prompt_is_the_pipeline_prefix_and_its_first_stop(smollm2_tiny):
    from transformers import AutoTokenizer

    from scalequest.prompts import generator_prefix

    tok = AutoTokenizer.from_pretrained(smollm2_tiny)
    prefix, eos = qft_prompt("auto", None, tok)
    assert (prefix, eos) == (generator_prefix("auto", None, tok)[0], "<|im_end|>")
    assert SMOL_SYSTEM in prefix and prefix.endswith("<|im_end|>\n<|im_start|>user\n")
    assert qft_prompt("qwen2", None, tok)[1] == "<|im_end|>"


@pytest.mark.parametrize("per_device, workers, effective, expected", [(4, 2, 8, 1), (4, 8, 32, 1), (2, 2, 32, 8)])
def test_grad_accum_steps_make_the_effective_batch(per_device, workers, effective, expected):
    q = QFTConfig(base_model="m", per_device_batch=per_device, effective_batch=effective)
    assert grad_accum_steps(q, workers) == expected


def test_grad_accum_steps_refuse_an_effective_batch_that_does_not_divide():
    with pytest.raises(ConfigError, match="effective_batch: 30 is not a multiple of .* = 8"):
        grad_accum_steps(QFTConfig(base_model="m", per_device_batch=4, effective_batch=30), 2)


def _prepared_rows(model_dir, questions, tmp_path):
    """Rows as SFTTrainer prepares them (tokenize, completion mask → labels), and one collated batch."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    prefix, eos = qft_prompt("auto", None, tok)
    q = QFTConfig(base_model=str(model_dir), per_device_batch=2, effective_batch=2)
    c = SFTLoop(hparams=q.hparams(), ray=RayTrainConfig(num_workers=1), base_model=str(model_dir), eos=eos,
                output_dir=str(tmp_path / "out"), work_dir=str(tmp_path / "work"))
    args = sft_args(c, tok, ray_train=False)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(qft_rows(questions, prefix, eos)))
    rows = list(trainer.train_dataset)
    return tok, prefix, eos, rows, trainer.data_collator(rows)


@pytest.mark.parametrize("model", ["tiny_model", "smollm2_tiny"])
def test_completion_only_mask_covers_exactly_the_question_and_end_token(model, request, questions, tmp_path):
    model_dir = request.getfixturevalue(model)
    tok, prefix, eos, rows, batch = _prepared_rows(model_dir, questions, tmp_path)
    for question, row, labels in zip(questions, rows, batch["labels"].tolist()):
        want = tok(question + eos, add_special_tokens=False)["input_ids"]
        trained = [t for t in labels if t != -100]
        assert trained == want, (tok.decode(trained), question + eos)
        assert tok.decode(trained) == question + eos
        first = next(i for i, t in enumerate(labels) if t != -100)
        assert tok.decode(row["input_ids"][:first]) == prefix  # everything before the question is masked
        assert all(t != -100 for t in labels[first:first + len(want)])  # one contiguous run


def test_qft_loop_in_process_changes_parameters_logs_loss_and_exports_bf16(trained_qft, tiny_model):
    from safetensors.torch import load_file

    config, messages = trained_qft
    losses = [m for m in messages if m.startswith("step ") and " loss " in m]
    assert len(losses) == 3 and losses[0].startswith("step 1/3 loss ")
    out = Path(config["output_dir"])
    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(before) == set(after)
    assert {str(t.dtype) for t in after.values()} == {"torch.bfloat16"}
    changed = [k for k in before if not before[k].equal(after[k])]
    assert "model.layers.0.mlp.up_proj.weight" in changed and len(changed) > len(before) // 2
    saved = json.loads((out / "config.json").read_text())
    assert saved["dtype"] == "bfloat16" and saved["use_cache"] is True
    assert (out / "tokenizer.json").is_file() and (out / "generation_config.json").is_file()
    stats = json.loads((Path(config["stats_path"]) / "rank0.json").read_text())
    assert stats["steps"] == 3 and stats["samples_per_s"] > 0 and stats["peak_rss_mib"] > 0


def test_qft_export_loads_in_vllm_and_generates_from_the_prefix(trained_qft, tiny_engine_cfg):
    from scalequest.engines.base import Sampling
    from scalequest.engines.vllm_engine import VLLMEngine

    config, _ = trained_qft
    engine = VLLMEngine(tiny_engine_cfg(config["output_dir"]))
    try:
        prefix = config["rows"][0]["prompt"]
        out = engine.generate([prefix], Sampling(n=2, max_tokens=16, stop=(config["eos"],)), seeds=[0])
    finally:
        engine.close()
    assert len(out) == 1 and len(out[0]) == 2
    assert all(g.num_tokens > 0 and g.finish_reason in ("stop", "length") for g in out[0])


def _tiny_cfg(tmp_path, **overrides):
    args = [f"{k}={v}" for k, v in overrides.items()]
    return load_config("tiny", [f"train.ray.storage_path={tmp_path / 'runs'}", *args])


def test_run_qft_without_a_train_qft_section_says_how_to_add_it(tmp_path):
    from scalequest.train.qft import run_qft

    cfg = _tiny_cfg(tmp_path)
    cfg.train.qft = None
    with pytest.raises(ConfigError, match=r"train.qft: missing — add a `train: \{qft:"):
        run_qft(cfg)


def test_run_qft_with_a_missing_base_model_names_it(tmp_path):
    missing = tmp_path / "models" / "nothing-here"
    with pytest.raises(ConfigError, match=f"train.qft.base_model: no model folder at '{missing}'"):
        build_qft_job(_tiny_cfg(tmp_path, **{"train.qft.base_model": missing}))


def test_build_qft_job_makes_rows_from_the_pipeline_prefix_and_absolute_paths(tmp_path, tiny_model, gsm8k_file,
                                                                              math_file, questions):
    cfg = _tiny_cfg(tmp_path, **{"train.qft.base_model": tiny_model, "train.qft.data": f"[{gsm8k_file}, {math_file}]",
                                 "train.qft.output_dir": "rel/out", "train.ray.deepspeed": "zero2"})
    loop_config, ray_cfg, name = build_qft_job(cfg)
    assert len(loop_config.rows) == 4 and loop_config.eos == "<|im_end|>"
    assert {r["completion"] for r in loop_config.rows} == {q + "<|im_end|>" for q in questions}
    assert loop_config.output_dir.startswith("/") and loop_config.output_dir.endswith("rel/out")
    assert ray_cfg.deepspeed.endswith("scalequest/train/deepspeed/zero2.json")
    assert loop_config.ray.deepspeed == ray_cfg.deepspeed
    assert name.startswith("tiny-qft-")


def test_cli_train_qft_reports_a_missing_base_model_with_exit_code_2(tmp_path, capsys):
    from scalequest.cli import main

    assert main(["train", "qft", "--config", "tiny", f"train.qft.base_model={tmp_path}/none"]) == 2
    assert "ConfigError: train.qft.base_model: no model folder" in capsys.readouterr().err
