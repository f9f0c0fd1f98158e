import pytest

from scalequest.config import load_config


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for this module (run_training joins a running Ray and leaves it up)."""
    import ray

    from scalequest.config import RayConfig, RayTrainConfig
    from scalequest.train.launcher import ensure_ray

    started = ensure_ray(RayTrainConfig(num_workers=2), RayConfig(env_vars={"RAY_AUTH_MODE": "disabled"}))
    yield
    if started:
        ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_qft_on_ray_train_with_deepspeed_zero2_on_two_cpu_workers_checkpoints_and_exports_for_vllm(
        tmp_path, tiny_model, tiny_engine_cfg, jsonl_writer, drill):
    """The whole QFT path: Ray Train TorchTrainer (gloo), DeepSpeed ZeRO-2 with the CPU workarounds, checkpoints in
    the storage path, a worker killed after the first checkpoint (the fault drill) and the restarted workers
    resuming from it, bf16 export that vLLM loads. The first DeepSpeed use JIT-compiles its CPU ops (~3-10 min,
    cached in ~/.cache/scalequest/torch_extensions)."""
    from scalequest.engines.base import Sampling
    from scalequest.engines.vllm_engine import VLLMEngine
    from scalequest.train.qft import run_qft

    data = jsonl_writer(tmp_path / "data" / "train.jsonl", [{"question": f"What is {i} + {2 * i}?"} for i in range(16)])
    storage, out = tmp_path / "runs", tmp_path / "qft-zero2"
    cfg = load_config("tiny", [
        f"train.qft.base_model={tiny_model}", f"train.qft.data=[{data}]", "train.qft.max_steps=2",
        "train.qft.per_device_batch=2", "train.qft.effective_batch=4", "train.qft.save_steps=1",
        f"train.qft.output_dir={out}", "train.ray.deepspeed=zero2", f"train.ray.storage_path={storage}",
        *drill.overrides])
    assert run_qft(cfg) == out
    drill.assert_resumed(out)

    [run] = storage.iterdir()
    checkpoints = sorted(run.glob("checkpoint_*/checkpoint"))
    assert len(checkpoints) == 2  # save_steps=1, max_steps=2; num_to_keep=2
    assert (checkpoints[-1] / "model.safetensors").is_file() and list(checkpoints[-1].glob("global_step2/*optim*"))
    assert (run / "config.yaml").is_file()

    engine = VLLMEngine(tiny_engine_cfg(out))
    try:
        [gens] = engine.generate(["What is"], Sampling(n=2, max_tokens=8, stop=("<|im_end|>",)), seeds=[1])
    finally:
        engine.close()
    assert len(gens) == 2 and all(g.num_tokens > 0 for g in gens)


@pytest.mark.ray
@pytest.mark.slow
def test_sft_on_a_runs_kept_pairs_on_ray_train_exports_a_solver_that_scalequest_eval_scores(
        tmp_path, tiny_model, tiny_llm, synth_run, drill):
    """`scalequest train sft` end to end: the kept pairs of a run folder, TRL SFT on 2 Ray Train CPU workers with
    DeepSpeed ZeRO-2, a worker killed after the first checkpoint and resumed from it, a bf16 export that vLLM
    loads, and `scalequest eval` over it."""
    import json

    from scalequest.evaluation.run import run_eval
    from scalequest.train.sft import run_sft

    out = tmp_path / "sft"
    cfg = load_config("tiny", [
        *tiny_llm, f"train.sft.base_model={tiny_model}", "train.sft.max_steps=2", "train.sft.save_steps=1",
        "train.sft.max_length=512", f"train.sft.output_dir={out}", "train.ray.deepspeed=zero2",
        f"train.ray.storage_path={tmp_path / 'runs'}", "eval.limit=3", "eval.sampling.max_tokens=8",
        f"eval.output_dir={tmp_path / 'evals'}", *drill.overrides])
    assert run_sft(cfg, [str(synth_run)]) == out
    drill.assert_resumed(out)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    folder, results = run_eval(cfg, str(out), ["gsm8k"])  # an engine actor on the export (EngineSet)
    gsm8k = results["benchmarks"]["gsm8k"]
    assert gsm8k["questions"] == 3 and 0.0 <= gsm8k["pass@1"]["value"] <= 1.0
    assert json.loads((folder / "results.json").read_text())["model"]["path"] == str(out)


@pytest.mark.ray
@pytest.mark.slow
def test_run_training_restarts_failed_workers_from_their_latest_checkpoint(tmp_path):
    """max_failures: a worker that dies after reporting a checkpoint is restarted and `resume_checkpoint` hands the
    new one that checkpoint's Hugging Face folder."""
    from scalequest.config import RayTrainConfig
    from scalequest.train.launcher import run_training

    def flaky_loop(config):
        import tempfile
        from pathlib import Path

        import ray.train

        from scalequest.train.launcher import resume_checkpoint

        with resume_checkpoint() as resume:
            if resume is None:  # first attempt: checkpoint "step 7", then die
                folder = Path(tempfile.mkdtemp()) / "checkpoint"
                folder.mkdir()
                (folder / "step").write_text("7")
                ray.train.report({"step": 7}, checkpoint=ray.train.Checkpoint.from_directory(folder.parent))
                raise RuntimeError("simulated worker failure")
            Path(config["seen"]).write_text((Path(resume) / "step").read_text())

    seen = tmp_path / "seen.txt"
    ray_cfg = RayTrainConfig(num_workers=1, max_failures=1, storage_path=str(tmp_path / "runs"))
    result = run_training(flaky_loop, {"seen": str(seen)}, ray_cfg, "flaky")
    assert seen.read_text() == "7" and result.checkpoint is not None
