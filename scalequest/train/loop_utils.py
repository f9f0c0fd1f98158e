"""The one training runtime of every job's worker loop (QFT and solver SFT, QPO's DPO, the difficulty scorer).

A loop gets a plain dict (it travels to Ray Train workers) that its typed `LoopConfig` subclass validates, then:

    c, ray_train = start(config, MyLoop)          # validate; DeepSpeed / CPU set-up (launcher.prepare_worker)
    rows = train_rows(c, ray_train)               # the Ray Dataset "train" on Ray Train, c.rows in-process
    args = training_args(DPOConfig, c, ray_train, beta=...)   # the one TrainingArguments builder
    return train(trainer, c, ray_train)           # resume, fault drill, export, training.json

On Ray Train (`launcher.run_training`) the rows travel as a Ray Dataset, not in the loop config, so workers on
other nodes need no shared disk for them; checkpoints go to `train.ray.storage_path` every `save_steps`, and a
worker group restarted after a failure (`train.ray.max_failures`) resumes from the latest. In-process (tests,
`--in-process`) the same loop trains on this machine without Ray. Test: `pytest tests/train`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from scalequest.config import RayTrainConfig, TrainingHparams

log = logging.getLogger(__name__)

SUMMARY_FILE = "training.json"
DATASET = "train"  # the Ray Dataset name run_training passes and train_rows reads


class LoopConfig(BaseModel):
    """What every worker loop receives. Subclasses add `hparams` (the job's typed config section) and their own
    fields."""

    model_config = ConfigDict(extra="forbid")

    hparams: TrainingHparams
    ray: RayTrainConfig
    base_model: str
    output_dir: str
    work_dir: str | None = None     # trainer scratch (checkpoints before Ray Train persists them); None: a temp dir
    seed: int = 0
    rows: list[dict[str, Any]] | None = None  # in-process; on Ray Train run_training passes them as a Ray Dataset
    in_process: bool | None = None  # None: detect (launcher.in_ray_train)
    stats_path: str | None = None   # per-rank throughput JSON (launcher.write_stats, for bench/)


def under_ray_train(c: LoopConfig) -> bool:
    """True inside a Ray Train worker, unless the config says it runs in-process."""
    if c.in_process is not None:
        return not c.in_process
    from scalequest.train.launcher import in_ray_train

    return in_ray_train()


def start(config: dict | LoopConfig, cls: type[LoopConfig]) -> tuple[LoopConfig, bool]:
    """(validated config, runs under Ray Train); prepares this process (DeepSpeed on CPU, a lone process's
    distributed env) before any model is loaded, as ZeRO-3 needs."""
    from scalequest.train.launcher import prepare_worker

    c = config if isinstance(config, cls) else cls.model_validate(config)
    if not c.work_dir:
        c = c.model_copy(update={"work_dir": tempfile.mkdtemp(prefix="scalequest-train-")})
        _TEMP_DIRS.append(c.work_dir)
    prepare_worker(c.ray)
    return c, under_ray_train(c)


_TEMP_DIRS: list[str] = []  # scratch folders `start` made, removed by `train` at the end


def train_rows(c: LoopConfig, ray_train: bool) -> list[dict]:
    """The training rows: the config's in-process, else the whole Ray Dataset 'train' (not split: the trainer's
    distributed sampler gives each worker its share, as it does in-process)."""
    if c.rows is not None:
        return c.rows
    if not ray_train:
        raise ValueError("training loop: no rows — give LoopConfig.rows or run it through launcher.run_training")
    import ray.train

    return list(ray.train.get_dataset_shard(DATASET).iter_rows())


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


def training_args(args_cls, c: LoopConfig, ray_train: bool, **specific):
    """The job's `TrainingArguments` (or TRL config: SFTConfig, DPOConfig) from its hyperparameters: schedule,
    batch and accumulation (`grad_accum`), checkpointing (Ray Train only: every `save_steps` into scratch, which
    RayTrainReportCallback persists), logging, seed, and the device / precision / DeepSpeed keywords of
    `launcher.trainer_kwargs`. `specific`: the job's own arguments (beta, max_length, ...)."""
    from scalequest.train.launcher import trainer_kwargs

    hp = c.hparams
    return args_cls(
        output_dir=str(Path(c.work_dir) / "checkpoints"),
        num_train_epochs=hp.epochs,
        max_steps=hp.max_steps or -1,
        learning_rate=hp.learning_rate,
        lr_scheduler_type=hp.lr_scheduler,
        warmup_steps=hp.warmup(),  # a float below 1 is a share of the steps
        per_device_train_batch_size=hp.per_device_batch,
        gradient_accumulation_steps=grad_accum(hp.effective_batch, hp.per_device_batch, world_size(ray_train)),
        logging_steps=1,
        logging_first_step=True,
        save_strategy="steps" if ray_train else "no",
        save_steps=hp.save_steps,
        save_total_limit=1,  # the local copy only lives until Ray Train has persisted it
        seed=c.seed,
        **trainer_kwargs(c.ray),
        **specific,
    )


def train(trainer, c: LoopConfig, ray_train: bool, **extra) -> dict:
    """Run `trainer` to the end and export: progress through `logging`; under Ray Train, checkpoints reported to
    Ray Train, resume from the latest after a restart, and the `train.ray.kill_worker_at_step` drill; then the
    plain bf16 HF folder at `c.output_dir` (`launcher.finish`, every rank) and `summary`. Returns the summary
    (`extra` added to it)."""
    from transformers.trainer_callback import PrinterCallback

    from scalequest.train.launcher import finish, progress_callbacks, resume_checkpoint, write_stats

    trainer.remove_callback(PrinterCallback)  # the progress callback logs the same through `logging`
    progress, timer = progress_callbacks()
    trainer.add_callback(progress)
    trainer.add_callback(timer)
    with resume_checkpoint() if ray_train else contextlib.nullcontext() as resume:
        if ray_train:
            from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

            trainer.add_callback(RayTrainReportCallback())
            if c.ray.kill_worker_at_step and resume is None:  # after the report callback: the checkpoint is out
                trainer.add_callback(_kill_after_checkpoint(c.ray.kill_worker_at_step))
            trainer = prepare_trainer(trainer)
        output = trainer.train(resume_from_checkpoint=resume)
        resumed_from = _checkpoint_step(resume)
    finish(trainer, c.output_dir)
    if c.stats_path:
        write_stats(Path(c.stats_path), timer, trainer, output.metrics)
    while _TEMP_DIRS:
        shutil.rmtree(_TEMP_DIRS.pop(), ignore_errors=True)
    return summary(trainer, c.output_dir, resumed_from_step=resumed_from, **extra)


def _checkpoint_step(path: str | None) -> int | None:
    if not path:
        return None
    state = Path(path) / "trainer_state.json"
    return json.loads(state.read_text())["global_step"] if state.is_file() else None


def _kill_after_checkpoint(step: int):
    """The fault drill's callback: worker 0 SIGKILLs its own process once the checkpoint of `step` is saved and
    reported (a few seconds' grace so Ray Train's controller has registered it)."""
    from transformers import TrainerCallback

    class KillAfterCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == step and state.is_world_process_zero:
                log.warning("fault drill (train.ray.kill_worker_at_step=%d): killing worker 0 (pid %d)", step,
                            os.getpid())
                time.sleep(5)
                os.kill(os.getpid(), signal.SIGKILL)

    return KillAfterCheckpoint()


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


def run(loop_fn, c: LoopConfig, name: str, cfg, *, in_process: bool = False) -> dict:
    """Run `loop_fn` with `c`: in this process, or on Ray Train per `cfg.train.ray` (joined through `cfg.ray`) with
    the rows as a Ray Dataset. Returns the loop's summary (read back from training.json on Ray Train)."""
    if in_process:
        return loop_fn(c.model_copy(update={"in_process": True}).model_dump(mode="json"))
    from scalequest.train.launcher import run_training

    run_training(loop_fn, c, cfg.train.ray, name, cfg.ray)
    return read_summary(c.output_dir)


def local_path(path: str) -> str:
    """An existing local path made absolute (Ray Train workers run in other folders); a hub id unchanged."""
    return str(Path(path).resolve()) if Path(path).exists() else path


def write_json(path: Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
