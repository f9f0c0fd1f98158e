import json

import pytest

from scalequest.config import RayTrainConfig
from scalequest.errors import ConfigError
from scalequest.train.launcher import (
    DEEPSPEED_DIR,
    deepspeed_config_path,
    resolve,
    to_bf16,
    trainer_kwargs,
    worker_env,
)


def test_trainer_kwargs_on_cpu_without_deepspeed_set_precision_and_checkpointing_explicitly():
    kw = trainer_kwargs(RayTrainConfig())
    assert kw["use_cpu"] is True and kw["bf16"] is False and kw["gradient_checkpointing"] is False
    assert kw["report_to"] == [] and "deepspeed" not in kw


def test_trainer_kwargs_on_cpu_with_deepspeed_reuse_the_prepared_accelerate_state():
    kw = trainer_kwargs(RayTrainConfig(deepspeed="zero2"))
    assert kw["use_cpu"] is False and kw["bf16"] is False  # use_cpu=True would make Accelerate skip DeepSpeed
    assert kw["accelerator_config"] == {"use_configured_state": True}
    assert kw["deepspeed"] == str(DEEPSPEED_DIR / "zero2.json")


def test_trainer_kwargs_on_gpu_train_in_bf16_with_the_deepspeed_json():
    kw = trainer_kwargs(RayTrainConfig(use_gpu=True, deepspeed="scalequest/train/deepspeed/zero3.json"))
    assert kw["bf16"] is True and kw["use_cpu"] is False and kw["deepspeed"].endswith("zero3.json")
    assert "accelerator_config" not in kw


@pytest.mark.parametrize("name", ["zero2", "zero3.json", "scalequest/train/deepspeed/zero2_offload.json"])
def test_deepspeed_config_path_finds_packaged_configs_by_name_or_repo_path(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the repo path must work from any folder (Ray workers run elsewhere)
    assert deepspeed_config_path(name).startswith(str(DEEPSPEED_DIR))


def test_deepspeed_config_path_rejects_an_unknown_config_and_lists_the_packaged_ones():
    with pytest.raises(ConfigError, match=r"no DeepSpeed config at 'zero9' .*'zero2', 'zero2_offload', 'zero3'"):
        resolve(RayTrainConfig(deepspeed="zero9"))


@pytest.mark.parametrize("name", ["zero2", "zero3", "zero2_offload"])
def test_packaged_deepspeed_configs_leave_batch_sizes_to_the_trainer(name):
    cfg = json.loads((DEEPSPEED_DIR / f"{name}.json").read_text())
    assert "train_batch_size" not in cfg  # "auto" there breaks with 2 processes (CPU-STACK trap 2)
    assert cfg["train_micro_batch_size_per_gpu"] == "auto" and cfg["gradient_accumulation_steps"] == "auto"
    assert cfg["zero_optimization"]["stage"] == (3 if name == "zero3" else 2)


def test_zero3_config_gathers_16bit_weights_on_save():
    cfg = json.loads((DEEPSPEED_DIR / "zero3.json").read_text())
    assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_worker_env_on_cpu_with_deepspeed_sets_accelerator_threads_and_a_stable_extensions_cache(monkeypatch):
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    env = worker_env(RayTrainConfig(deepspeed="zero2"))
    assert env["DS_ACCELERATOR"] == "cpu" and env["OMP_NUM_THREADS"] == "1"
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
    assert env["TORCH_EXTENSIONS_DIR"].endswith(".cache/scalequest/torch_extensions")


def test_worker_env_on_gpu_leaves_the_accelerator_alone():
    env = worker_env(RayTrainConfig(use_gpu=True))
    assert "DS_ACCELERATOR" not in env and "ACCELERATE_USE_DEEPSPEED" not in env


def test_to_bf16_rewrites_fp32_weights_and_the_config_dtype(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    save_file({"w": torch.ones(2, 2), "ids": torch.arange(3)}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "float32"}))
    to_bf16(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert tensors["w"].dtype == torch.bfloat16 and tensors["ids"].dtype == torch.int64
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"


def test_the_fault_drill_needs_restarts_and_a_checkpoint_at_its_step(tmp_path):
    """train.ray.kill_worker_at_step is refused before Ray starts when it would end the job (no restarts allowed)
    or never fire (no checkpoint at that step)."""
    from scalequest.config import CausalLMTraining, RayTrainConfig
    from scalequest.errors import ConfigError
    from scalequest.train.launcher import run_training
    from scalequest.train.qft import SFTLoop, sft_loop

    c = SFTLoop(hparams=CausalLMTraining(base_model="m", save_steps=2).hparams(), ray=RayTrainConfig(), eos="</s>",
                base_model="m", output_dir=str(tmp_path), rows=[{"prompt": "p", "completion": "c"}])
    with pytest.raises(ConfigError, match="max_failures"):
        run_training(sft_loop, c, RayTrainConfig(kill_worker_at_step=2), "drill")
    with pytest.raises(ConfigError, match=r"save_steps=2\) — pick a multiple"):
        run_training(sft_loop, c, RayTrainConfig(kill_worker_at_step=3, max_failures=1), "drill")
