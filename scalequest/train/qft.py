"""Question fine-tuning (QFT): teach a problem-solving model to write problems.

Each training row is prompt = the generator's pre-query prefix (`scalequest.prompts.generator_prefix`, exactly what
the synthesis pipeline feeds it), completion = a question + the end-of-turn token, so the loss falls on the question
and its end only. Defaults follow the paper's code: 1 epoch, lr 2e-5, cosine, 3% warm-up, max length 256, effective
batch 32 (= per_device_batch × workers × gradient accumulation).

    scalequest train qft --config tiny                # SmolLM2-135M, 2 CPU workers, ~20 steps
    run_qft(load_config("tiny"))                      # the same from Python; returns the exported model folder

Test: `pytest tests/train` (in-process steps, masks, export → vLLM; the Ray Train + DeepSpeed run is `-m slow`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from scalequest.config import CausalLMTraining, SynthesisConfig
from scalequest.errors import ConfigError
from scalequest.train.launcher import (
    finish,
    in_ray_train,
    prepare_worker,
    progress_callbacks,
    resolve,
    resume_checkpoint,
    run_training,
    trainer_kwargs,
    write_stats,
)

log = logging.getLogger(__name__)


def qft_rows(questions: list[str], prefix: str, eos: str) -> list[dict]:
    """TRL prompt/completion rows: the loss covers `question + eos` only."""
    return [{"prompt": prefix, "completion": q + eos} for q in questions]


def qft_prompt(template: str, custom_prefix: str | None, tokenizer) -> tuple[str, str]:
    """(pre-query prefix, end-of-turn string) for a generator family, from the pipeline's own prefix function."""
    from scalequest.prompts import generator_prefix

    prefix, stops = generator_prefix(template, custom_prefix, tokenizer)
    eos = stops[0] if stops else getattr(tokenizer, "eos_token", None)
    if not eos:
        raise ConfigError(f"train.qft.template: '{template}' gives no end-of-turn string and the tokenizer has no "
                          f"EOS token — use a model with a chat template or set template: custom with an EOS")
    return prefix, eos


def grad_accum_steps(q: CausalLMTraining, num_workers: int, key: str = "train.qft") -> int:
    """Gradient accumulation so that per_device_batch × workers × accumulation = effective_batch
    (`loop_utils.grad_accum`, the rule every job shares)."""
    from scalequest.train.loop_utils import grad_accum

    return grad_accum(q.effective_batch, q.per_device_batch, num_workers, key)


def sft_args(config: dict, ray_cfg, tokenizer):
    """The `SFTConfig` for one worker (call after `prepare_worker`, before loading the model: ZeRO-3 needs that)."""
    from trl import SFTConfig

    q = CausalLMTraining.model_validate(config["hparams"])
    eos = config["eos"]
    in_ray = in_ray_train()
    return SFTConfig(
        output_dir=config["work_dir"],
        num_train_epochs=q.epochs,
        max_steps=q.max_steps or -1,
        learning_rate=q.learning_rate,
        lr_scheduler_type=q.lr_scheduler,
        warmup_steps=q.warmup_ratio,  # a float below 1 is a share of the steps
        per_device_train_batch_size=q.per_device_batch,
        gradient_accumulation_steps=config["grad_accum"],
        max_length=q.max_length,
        packing=q.packing,
        completion_only_loss=True,
        # TRL appends the tokenizer's EOS to every completion unless it already ends with it: make that our end of
        # turn when it is one token (ChatML <|im_end|>); a text stop ('\n\nAssistant:') stays text + the model's EOS
        eos_token=eos if eos in tokenizer.get_vocab() else None,
        logging_steps=1,
        save_strategy="steps" if in_ray else "no",  # checkpoints go to Ray Train storage
        save_steps=q.save_steps,
        save_total_limit=1,  # the local copy only lives until Ray Train has persisted it
        seed=config.get("seed", 0),
        **trainer_kwargs(ray_cfg),
    )


def sft_loop(config: dict) -> None:
    """The per-worker prompt/completion fine-tune, for QFT and solver SFT (Ray Train worker, or a plain process for
    tests and debugging): TRL's SFTTrainer with the loss on the completions only.

    `config`: hparams (`CausalLMTraining.hparams()`), ray (RayTrainConfig dict), base_model, output_dir, rows
    ({prompt, completion}), eos, grad_accum, seed; optional work_dir (trainer scratch; default a temp dir) and
    stats_path (per-rank throughput JSON, for bench/).
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    ray_cfg = prepare_worker(config["ray"])
    scratch = None if config.get("work_dir") else tempfile.mkdtemp(prefix="scalequest-sft-")
    config = {**config, "work_dir": config.get("work_dir") or scratch}
    tokenizer = AutoTokenizer.from_pretrained(config["base_model"])
    args = sft_args(config, ray_cfg, tokenizer)
    # DeepSpeed on GPU keeps fp32 master weights itself, so bf16 loading halves memory; otherwise the optimizer
    # steps on the loaded weights, which must then be fp32. The export is bf16 either way.
    half = ray_cfg.use_gpu and ray_cfg.deepspeed
    model = AutoModelForCausalLM.from_pretrained(config["base_model"], dtype=torch.bfloat16 if half else torch.float32)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(config["rows"]),
                         processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # progress_callbacks log the same through `logging`
    progress, timer = progress_callbacks()
    trainer.add_callback(progress)
    trainer.add_callback(timer)
    if in_ray_train():
        from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

        trainer.add_callback(RayTrainReportCallback())
        trainer = prepare_trainer(trainer)
    try:
        with resume_checkpoint() as resume:  # a restart after a failure continues from the latest checkpoint
            output = trainer.train(resume_from_checkpoint=resume)
        finish(trainer, config["output_dir"])
        if config.get("stats_path"):
            write_stats(Path(config["stats_path"]), timer, trainer, output.metrics)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def build_qft_job(cfg: SynthesisConfig, name: str | None = None) -> tuple[dict, object, str]:
    """(loop config, resolved RayTrainConfig, run name) for `cfg.train.qft`, checked before Ray starts."""
    from transformers import AutoTokenizer

    from scalequest.runtime import check_model_path
    from scalequest.train.data import load_questions

    q = cfg.train.qft
    if q is None:
        raise ConfigError("train.qft: missing — add a `train: {qft: {base_model: ..., output_dir: ...}}` section to "
                          "the config (see scalequest/configs/tiny.yaml) or pass train.qft.base_model=PATH")
    check_model_path("train.qft.base_model", q.base_model)
    ray_cfg = resolve(cfg.train.ray)
    grad_accum = grad_accum_steps(q, ray_cfg.num_workers)
    base = str(Path(q.base_model).expanduser().resolve()) if Path(q.base_model).expanduser().is_dir() else q.base_model
    tokenizer = AutoTokenizer.from_pretrained(base)
    prefix, eos = qft_prompt(q.template, q.prefix, tokenizer)
    questions = load_questions(q.data, q.max_questions, seed=cfg.seed)
    log.info("QFT prefix %r, end of turn %r, %d questions, grad accumulation %d", prefix, eos, len(questions),
             grad_accum)
    output_dir = str(Path(q.output_dir).expanduser().resolve())  # workers run in other folders
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    loop_config = {
        "hparams": q.hparams(), "ray": ray_cfg.model_dump(), "base_model": base, "output_dir": output_dir,
        "rows": qft_rows(questions, prefix, eos), "eos": eos, "grad_accum": grad_accum, "seed": cfg.seed,
    }
    return loop_config, ray_cfg, name or f"{cfg.name}-qft-{stamp}"


def run_qft(cfg: SynthesisConfig) -> Path:
    """Question fine-tuning on Ray Train; returns the exported generator folder (`train.qft.output_dir`)."""
    loop_config, ray_cfg, name = build_qft_job(cfg)
    result = run_training(sft_loop, loop_config, ray_cfg, name, cfg.ray)
    output_dir = Path(loop_config["output_dir"])
    _write_run_config(cfg, Path(result.path))
    log.info("QFT done: model %s, checkpoints %s", output_dir, result.path)
    return output_dir


def _write_run_config(cfg: SynthesisConfig, run_path: Path) -> None:
    import yaml

    if run_path.is_dir():  # a local storage path; on s3:// etc. the resolved config stays in the job log
        (run_path / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
