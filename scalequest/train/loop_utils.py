"""What the QPO (DPO) and difficulty training loops share: one loop function runs either in-process (tests,
single-process runs) or as a Ray Train worker loop.

Under Ray Train (detected by `launcher.in_ray_train()`, or forced with `config["ray_train"]`) the loop uses the
launcher's `prepare_worker` / `trainer_kwargs` / `finish` (DeepSpeed and the CPU workarounds live there) and reports
checkpoints with `RayTrainReportCallback`; in-process it trains on this machine's device and saves with
`save_model`. Test: `pytest tests/train`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def under_ray_train(config: dict) -> bool:
    """True inside a Ray Train worker (or when `config["ray_train"]` says so)."""
    if config.get("ray_train") is not None:
        return bool(config["ray_train"])
    from scalequest.train.launcher import in_ray_train

    return in_ray_train()


def world_size(ray_train: bool) -> int:
    if not ray_train:
        return 1
    import ray.train

    return ray.train.get_context().get_world_size()


def grad_accum(effective_batch: int, per_device_batch: int, workers: int, key: str = "train") -> int:
    """The one gradient-accumulation rule of every training job: steps such that per_device_batch × workers × steps
    = effective_batch exactly; ConfigError naming `key` when it does not divide (drivers check before Ray starts)."""
    from scalequest.errors import ConfigError

    per_step = per_device_batch * workers
    if effective_batch % per_step:
        raise ConfigError(f"{key}.effective_batch: {effective_batch} is not a multiple of per_device_batch × "
                          f"num_workers = {per_device_batch} × {workers} = {per_step} — change one of them")
    return effective_batch // per_step


def ray_train_cfg(config: dict):
    from scalequest.config import RayTrainConfig

    return RayTrainConfig(**config.get("ray", {}))


def setup(config: dict) -> bool:
    """Prepare this process for training; returns whether it runs under Ray Train."""
    ray_train = under_ray_train(config)
    if ray_train:
        from scalequest.train.launcher import prepare_worker

        prepare_worker(ray_train_cfg(config))
    return ray_train


def args_kwargs(config: dict, ray_train: bool) -> dict:
    """Device, precision, saving and logging keyword arguments for `TrainingArguments` / TRL configs.

    TRL configs default to bf16 and gradient checkpointing even on CPU, so both are always set explicitly.
    """
    import torch

    kwargs = {"report_to": [], "logging_steps": config.get("logging_steps", 5), "logging_first_step": True,
              "gradient_checkpointing": False, "seed": config.get("seed", 0), "disable_tqdm": True}
    if ray_train:
        from scalequest.train.launcher import trainer_kwargs

        # RayTrainReportCallback reports on every save; a step strategy also saves at the last step.
        kwargs.update(save_strategy="steps", save_steps=config.get("save_steps", 500), save_total_limit=1,
                      ddp_find_unused_parameters=False)  # True (the default here) costs a graph walk per step
        kwargs.update(trainer_kwargs(ray_train_cfg(config)))
    else:
        cuda = torch.cuda.is_available()
        kwargs.update(save_strategy="no", use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported())
    return kwargs


def wrap(trainer, ray_train: bool):
    """Log the loss through `logging`; under Ray Train also report metrics and checkpoints to Ray."""
    from scalequest.train.launcher import progress_callbacks

    trainer.add_callback(progress_callbacks()[0])
    if not ray_train:
        return trainer
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    trainer.add_callback(RayTrainReportCallback())
    return prepare_trainer(trainer)


def export(trainer, tokenizer, output_dir: str, ray_train: bool) -> None:
    """Write the trained model as a plain Hugging Face folder (under Ray: the launcher gathers ZeRO-3 shards)."""
    if ray_train:
        from scalequest.train.launcher import finish

        finish(trainer, output_dir)
        return
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    trainer.save_model(output_dir)
    tokenizer.save_pretrained(output_dir)
    log.info("exported %s", output_dir)


SUMMARY_FILE = "training.json"


def summary(trainer, output_dir: str, **extra) -> dict:
    """Final metrics plus the logged losses (what the loop returns and the run report keeps), also written to
    <output_dir>/training.json by the main process: on Ray Train the loop's return value does not reach the driver
    (`Result.metrics` holds the last reported step only), so the driver reads the file (`read_summary`)."""
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    out = {"global_step": trainer.state.global_step, "losses": losses, "log_history": history, **extra}
    if trainer.is_world_process_zero():
        write_json(Path(output_dir) / SUMMARY_FILE, out)
    return out


def read_summary(output_dir: str) -> dict:
    """What `summary` wrote for the run that exported to `output_dir`."""
    return json.loads((Path(output_dir) / SUMMARY_FILE).read_text())


def local_path(path: str) -> str:
    """An existing local path made absolute (Ray Train workers run in other folders); a hub id unchanged."""
    return str(Path(path).resolve()) if Path(path).exists() else path


def write_json(path: Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
