"""The one place that knows Ray Train and DeepSpeed: start the workers, make DeepSpeed run on CPU, export the model.

Driver side:   `run_training(loop_fn, loop_config, ray_cfg, name)` → a Ray Train `TorchTrainer` over
               `ray_cfg.num_workers` workers (gloo on CPU, NCCL on GPU), checkpoints under `ray_cfg.storage_path`.
Worker side:   `prepare_worker(ray_cfg)` first, then a TRL config built with `**trainer_kwargs(ray_cfg)`, then train,
               then `finish(trainer, output_dir)` (every rank: ZeRO-3 gathers the shards) → a plain bf16 HF folder.

DeepSpeed on CPU needs three workarounds (../shared/CPU-STACK.md): a distributed env even for one process, no
`train_batch_size: "auto"` in the JSON (the repo's configs have none), and an Accelerate state created up front for
DeepSpeed with gloo (`prepare_worker`) that the TRL config then reuses (`use_configured_state`).

Test: `pytest tests/train/test_ray_train.py -m "ray and slow"`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import resource
import socket
import time
from pathlib import Path

from scalequest.config import RayTrainConfig
from scalequest.errors import ConfigError

log = logging.getLogger(__name__)

DEEPSPEED_DIR = Path(__file__).parent / "deepspeed"
TORCH_EXTENSIONS_DIR = Path("~/.cache/scalequest/torch_extensions").expanduser()


def deepspeed_config_path(value: str) -> str:
    """Absolute path of a DeepSpeed JSON: a file path, or a packaged name ('zero2', 'zero3', 'zero2_offload')."""
    path = Path(value).expanduser()
    if path.is_file():
        return str(path.resolve())
    packaged = DEEPSPEED_DIR / (path.name if path.suffix == ".json" else f"{path.name}.json")
    if packaged.is_file():
        return str(packaged)
    names = sorted(p.stem for p in DEEPSPEED_DIR.glob("*.json"))
    raise ConfigError(f"train.ray.deepspeed: no DeepSpeed config at '{value}' — give a JSON path or one of {names}")


def resolve(ray_cfg: RayTrainConfig) -> RayTrainConfig:
    """`ray_cfg` with its DeepSpeed config as an absolute path (pass this one to the workers)."""
    if not ray_cfg.deepspeed:
        return ray_cfg
    return ray_cfg.model_copy(update={"deepspeed": deepspeed_config_path(ray_cfg.deepspeed)})


def torch_extensions_dir() -> str:
    """Where DeepSpeed JIT-compiles its CPU ops (shm_comm, cpu_adam): stable, so they compile once per machine."""
    return os.environ.get("TORCH_EXTENSIONS_DIR") or str(TORCH_EXTENSIONS_DIR)


def worker_env(ray_cfg: RayTrainConfig) -> dict[str, str]:
    """Environment for every training worker."""
    env = {"TORCH_EXTENSIONS_DIR": torch_extensions_dir(), "TOKENIZERS_PARALLELISM": "false",
           # Ray Train's print patch leaks what `datasets` captures from stdout (pages of bytecode) into the logs
           "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    if not ray_cfg.use_gpu:
        env |= {"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": str(max(1, int(ray_cfg.cpus_per_worker)))}
    if ray_cfg.deepspeed:
        env["ACCELERATE_USE_DEEPSPEED"] = "true"
    for name in ("HF_HUB_OFFLINE", "HF_HOME", "HF_DATASETS_OFFLINE"):  # the driver's offline choice holds for workers
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def ensure_ray(ray_cfg: RayTrainConfig, rcfg=None) -> bool:
    """Start or join Ray for a training job through `runtime.init_ray`, the pipeline's own start-up: `rcfg` is the
    config's `ray` section (address, env_vars; a `ray job submit` job joins via ray.address=auto or $RAY_ADDRESS).
    A local Ray gets max(4, workers × CPUs + 2) logical CPUs (the Ray Train controller needs one besides the
    workers), a 1 GiB object store unless `ray.object_store_gib` says otherwise, and the dashboard: Ray Train's
    placement-group cleaner polls the state API it serves, and warns every few seconds without it. True if this
    call started or joined it."""
    from scalequest.config import RayConfig
    from scalequest.runtime import init_ray

    rcfg = rcfg or RayConfig()
    updates = {"address": rcfg.address or os.environ.get("RAY_ADDRESS")}
    if rcfg.object_store_gib is None:
        updates["object_store_gib"] = 1.0
    return init_ray(rcfg.model_copy(update=updates), dashboard=True,
                    min_cpus=max(4, math.ceil(ray_cfg.num_workers * ray_cfg.cpus_per_worker) + 2))


def storage_uri(path: str) -> str:
    """Ray Train storage: URIs (s3://, gs://) as given, local paths made absolute (workers run elsewhere)."""
    return path if "://" in path else str(Path(path).expanduser().resolve())


def run_training(loop_fn, loop_config, ray_cfg: RayTrainConfig, name: str, rcfg=None):
    """Run `loop_fn(loop_config)` on every Ray Train worker; returns the `ray.train.Result` (checkpoints, metrics).
    `loop_config`: a `loop_utils.LoopConfig` (its rows go to the workers as the Ray Dataset 'train', read whole by
    each: `loop_utils.train_rows`) or a plain dict. `rcfg`: the config's `ray` section (`ensure_ray`); a Ray
    started here is shut down at the end."""
    import ray
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from scalequest.train.loop_utils import DATASET, LoopConfig

    ray_cfg = resolve(ray_cfg)  # a bad DeepSpeed path fails here, before Ray starts
    drill = ray_cfg.kill_worker_at_step
    if drill and ray_cfg.max_failures == 0:
        raise ConfigError(f"train.ray.kill_worker_at_step={drill}: the drill kills a worker, which ends the job "
                          "unless Ray Train may restart it — set train.ray.max_failures to 1 or more")
    rows = None
    if isinstance(loop_config, LoopConfig):
        if drill and drill % loop_config.hparams.save_steps:
            raise ConfigError(f"train.ray.kill_worker_at_step={drill}: no checkpoint is saved at that step "
                              f"(save_steps={loop_config.hparams.save_steps}) — pick a multiple of save_steps")
        rows = loop_config.rows
        loop_config = loop_config.model_copy(update={"ray": ray_cfg}).model_dump(mode="json", exclude={"rows"})
    started = ensure_ray(ray_cfg, rcfg)
    storage = storage_uri(ray_cfg.storage_path)
    if "://" not in storage:
        Path(storage).mkdir(parents=True, exist_ok=True)
    data = {"datasets": {DATASET: ray.data.from_items(rows)},
            "dataset_config": DataConfig(datasets_to_split=[])} if rows is not None else {}
    trainer = TorchTrainer(
        loop_fn,
        train_loop_config=loop_config,
        **data,
        torch_config=TorchConfig(backend="nccl" if ray_cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=ray_cfg.num_workers, use_gpu=ray_cfg.use_gpu,
                                     resources_per_worker={"CPU": ray_cfg.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=ray_cfg.num_to_keep),
                             failure_config=FailureConfig(max_failures=ray_cfg.max_failures),
                             worker_runtime_env={"env_vars": worker_env(ray_cfg)}),
    )
    log.info("Ray Train '%s': %d %s worker(s)%s, storage %s", name, ray_cfg.num_workers,
             "GPU" if ray_cfg.use_gpu else "CPU", f", DeepSpeed {ray_cfg.deepspeed}" if ray_cfg.deepspeed else "",
             storage)
    try:
        result = trainer.fit()
    finally:
        if started:
            ray.shutdown()
    log.info("Ray Train '%s' finished: %s", name, result.path)
    return result


def in_ray_train() -> bool:
    """True inside a Ray Train worker (so callbacks that report to Ray Train can be added)."""
    try:
        import ray.train

        ray.train.get_context()
        return True
    except (ImportError, RuntimeError):
        return False


@contextlib.contextmanager
def resume_checkpoint():
    """Inside a Ray Train worker restarted after a failure: the local path of the latest Hugging Face checkpoint
    (for `trainer.train(resume_from_checkpoint=...)`); None on a first attempt or outside Ray Train."""
    if not in_ray_train():
        yield None
        return
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as folder:
        path = Path(folder) / RayTrainReportCallback.CHECKPOINT_NAME
        log.info("resuming from %s", path)
        yield str(path)


def prepare_worker(ray_cfg: RayTrainConfig | dict) -> RayTrainConfig:
    """Call at the top of a training loop, before building the TRL config (returns the validated config).

    With DeepSpeed: a distributed env for a lone process outside Ray Train (else DeepSpeed asks for mpi4py). On CPU
    also DeepSpeed's CPU accelerator, and an Accelerate state created for DeepSpeed with gloo, which `trainer_kwargs`
    tells the TRL config to reuse (without it Accelerate sees one process and gloo's allgather fails).
    """
    ray_cfg = RayTrainConfig.model_validate(ray_cfg)
    if not ray_cfg.deepspeed:
        return ray_cfg
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(_free_port()))
    if ray_cfg.use_gpu:
        return ray_cfg
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", torch_extensions_dir())
    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    from accelerate import PartialState

    PartialState(backend="gloo")
    return ray_cfg


def trainer_kwargs(ray_cfg: RayTrainConfig | dict) -> dict:
    """TrainingArguments / TRL-config keyword arguments every job needs (precision, device, DeepSpeed, reporting)."""
    ray_cfg = RayTrainConfig.model_validate(ray_cfg)
    # every parameter of a full fine-tune gets a gradient: DDP's unused-parameter search only costs time
    kwargs: dict = {"report_to": [], "disable_tqdm": True, "ddp_find_unused_parameters": False}
    if ray_cfg.deepspeed:
        kwargs["deepspeed"] = deepspeed_config_path(ray_cfg.deepspeed)
    if ray_cfg.use_gpu:
        return kwargs | {"use_cpu": False, "bf16": True, "gradient_checkpointing": True}
    kwargs |= {"bf16": False, "gradient_checkpointing": False}  # TRL defaults both on, even on CPU
    if ray_cfg.deepspeed:  # use_cpu=True would make Accelerate ignore DeepSpeed; the device is CPU regardless
        return kwargs | {"use_cpu": False, "accelerator_config": {"use_configured_state": True}}
    return kwargs | {"use_cpu": True}


def finish(trainer, output_dir: str | Path) -> Path:
    """Export the trained model as a plain bf16 Hugging Face folder that vLLM loads; call on every rank."""
    output_dir = Path(output_dir)
    trainer.model.config.use_cache = True  # training turns the KV cache off; generation wants it back
    trainer.save_model(str(output_dir))  # collective under ZeRO-3: every rank hands over its shards
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(str(output_dir))
        to_bf16(output_dir)
        log.info("exported %s", output_dir)
    trainer.accelerator.wait_for_everyone()
    return output_dir


def progress_callbacks():
    """(logger, step timer) Trainer callbacks: loss and learning rate through `logging` on rank 0, and wall time
    per optimizer step for `write_stats` (defined here so transformers is imported only when training)."""
    from transformers import TrainerCallback

    class LogProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:
                log.info("step %d/%d loss %.4f lr %.3g", state.global_step, state.max_steps, logs["loss"],
                         logs.get("learning_rate", float("nan")))

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.start, self.step_ends = None, []

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.step_ends.append(time.perf_counter())

    return LogProgress(), StepTimer()


def write_stats(folder: Path, timer, trainer, metrics: dict) -> dict:
    """Write this rank's throughput and peak memory to `folder/rank<N>.json` (read by bench/qft_throughput.py).

    samples_per_s is steady state: steps after the first (which pays for warm-up and DeepSpeed set-up).
    """
    args, ends = trainer.args, timer.step_ends
    steady = ends[-1] - ends[0] if len(ends) > 1 else None
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
    record = {
        "rank": args.process_index,
        "steps": len(ends),
        "samples_per_s": per_step * (len(ends) - 1) / steady if steady else None,
        "first_step_s": ends[0] - timer.start if ends else None,
        "train_runtime_s": metrics.get("train_runtime"),
        "train_loss": metrics.get("train_loss"),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }
    import torch

    if torch.cuda.is_available():
        record["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank{args.process_index}.json").write_text(json.dumps(record) + "\n")
    return record


def to_bf16(folder: Path) -> None:
    """Rewrite the floating-point tensors of a saved HF folder in bf16 (shard by shard) and say so in config.json."""
    import torch
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    total = 0
    for shard in sorted(folder.glob("*.safetensors")):
        tensors = load_file(shard)
        if any(t.is_floating_point() and t.dtype != torch.bfloat16 for t in tensors.values()):
            tensors = {k: t.to(torch.bfloat16) if t.is_floating_point() else t for k, t in tensors.items()}
            mode = shard.stat().st_mode
            save_file(tensors, shard, metadata={"format": "pt"})
            shard.chmod(mode)  # save_file would leave it owner-only
        total += sum(t.numel() * t.element_size() for t in tensors.values())
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config |= {"dtype": "bfloat16"} | ({"torch_dtype": "bfloat16"} if "torch_dtype" in config else {})
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    index_path = folder / "model.safetensors.index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        index.setdefault("metadata", {})["total_size"] = total
        index_path.write_text(json.dumps(index, indent=2) + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
