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
from datetime import UTC, datetime
from pathlib import Path

from scalequest.config import CausalLMTraining, SynthesisConfig
from scalequest.errors import ConfigError
from scalequest.train import loop_utils
from scalequest.train.launcher import resolve, run_training

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
    return loop_utils.grad_accum(q.effective_batch, q.per_device_batch, num_workers, key)


class SFTLoop(loop_utils.LoopConfig):
    """`sft_loop`'s config: rows are {prompt, completion}; `eos` ends each completion."""

    hparams: CausalLMTraining
    eos: str


def sft_args(c: SFTLoop, tokenizer, ray_train: bool):
    """The `SFTConfig` for one worker (`loop_utils.training_args` plus SFT's own: loss on completions only)."""
    from trl import SFTConfig

    return loop_utils.training_args(
        SFTConfig, c, ray_train, max_length=c.hparams.max_length, packing=c.hparams.packing,
        completion_only_loss=True,
        # TRL appends the tokenizer's EOS to every completion unless it already ends with it: make that our end of
        # turn when it is one token (ChatML <|im_end|>); a text stop ('\n\nAssistant:') stays text + the model's EOS
        eos_token=c.eos if c.eos in tokenizer.get_vocab() else None)


def sft_loop(config: dict) -> dict:
    """The per-worker prompt/completion fine-tune, for QFT and solver SFT (Ray Train worker, or a plain process for
    tests and debugging): TRL's SFTTrainer with the loss on the completions only. `config`: an `SFTLoop`."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    c, ray_train = loop_utils.start(config, SFTLoop)
    tokenizer = AutoTokenizer.from_pretrained(c.base_model)
    args = sft_args(c, tokenizer, ray_train)
    # DeepSpeed on GPU keeps fp32 master weights itself, so bf16 loading halves memory; otherwise the optimizer
    # steps on the loaded weights, which must then be fp32. The export is bf16 either way.
    half = c.ray.use_gpu and c.ray.deepspeed
    model = AutoModelForCausalLM.from_pretrained(c.base_model, dtype=torch.bfloat16 if half else torch.float32)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(loop_utils.train_rows(c, ray_train)),
                         processing_class=tokenizer)
    return loop_utils.train(trainer, c, ray_train)


def build_qft_job(cfg: SynthesisConfig, name: str | None = None) -> tuple[SFTLoop, object, str]:
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
    loop_config = SFTLoop(hparams=q.hparams(), ray=ray_cfg, base_model=base, output_dir=output_dir,
                          rows=qft_rows(questions, prefix, eos), eos=eos, seed=cfg.seed)
    return loop_config, ray_cfg, name or f"{cfg.name}-qft-{stamp}"


def run_qft(cfg: SynthesisConfig) -> Path:
    """Question fine-tuning on Ray Train; returns the exported generator folder (`train.qft.output_dir`)."""
    loop_config, ray_cfg, name = build_qft_job(cfg)
    result = run_training(sft_loop, loop_config, ray_cfg, name, cfg.ray)
    output_dir = Path(loop_config.output_dir)
    _write_run_config(cfg, Path(result.path))
    log.info("QFT done: model %s, checkpoints %s", output_dir, result.path)
    return output_dir


def _write_run_config(cfg: SynthesisConfig, run_path: Path) -> None:
    import yaml

    if run_path.is_dir():  # a local storage path; on s3:// etc. the resolved config stays in the job log
        (run_path / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
