"""The typed config tree and `load_config(path, overrides)`; nothing else.

A config is one YAML file (a path, or the name of a packaged config: `tiny`, `paper`) plus dotted overrides such as
`num_candidates=500` or `generators.0.share=0.3` (values parsed as YAML, so they arrive typed). Every field carries a
description: that text is the reference documentation (`scalequest validate --explain` prints it).

Test: `pytest tests/test_config.py`.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scalequest.errors import ConfigError

PACKAGED = ("tiny", "paper")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SamplingConfig(Strict):
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(512, ge=1, description="Most tokens to generate per output.")
    stop: list[str] = Field(default_factory=list, description="Extra stop strings (end-of-turn is always added).")


class ModelConfig(Strict):
    path: str = Field(description="A local Hugging Face model folder or a hub id (e.g. Qwen/Qwen2-Math-7B-Instruct).")
    trust_remote_code: bool = Field(False, description="Run the model repo's own Python code. Off unless you trust it.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field("bfloat16", description="Weights dtype.")
    max_model_len: int = Field(4096, ge=128, description="Context length the engine reserves per sequence.")
    max_num_seqs: int = Field(256, ge=1, description="Most sequences the engine batches at once.")
    enforce_eager: bool = Field(False, description="Skip CUDA graphs / torch.compile (set true on CPU).")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="vLLM's GPU memory share (GPU only).")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine (vLLM tensor parallelism).")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments for vLLM.")
    num_cpus: float = Field(1.0, ge=0.0, description="Ray CPUs reserved per engine replica.")
    num_gpus: float = Field(0.0, ge=0.0, description="Ray GPUs reserved per engine replica.")
    replicas: int = Field(1, ge=1, description="Engine replicas for this model; requests are spread over them.")


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
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, top_p=0.99, max_tokens=256),
        description="Question sampling (paper: T=1.0, top-p 0.99).",
    )

    @model_validator(mode="after")
    def _custom_needs_prefix(self):
        if self.template == "custom" and not self.prefix:
            raise ValueError("template 'custom' needs `prefix` (the text the model sees before the question)")
        return self


class LanguageConfig(Strict):
    enabled: bool = Field(True, description="Run the English filter.")
    min_score: float = Field(0.5, ge=0.0, le=1.0, description="Least fastText confidence for English.")
    script_rule: bool = Field(True, description="Reject questions with letters of a non-English script.")
    formula_letter_share: float = Field(
        0.5, ge=0.0, le=1.0,
        description="Questions whose letters are below this share of non-space characters are formula-dominated: "
        "fastText is unreliable on them, so they pass when the script rule passes.",
    )
    batch_size: int = Field(256, ge=1, description="Rows per batch.")


class DedupConfig(Strict):
    enabled: bool = Field(True, description="Drop exact duplicates (normalized text) within a run.")


class SolvabilityConfig(Strict):
    enabled: bool = Field(True, description="Ask the judge whether each question is a solvable math problem.")
    model: str = Field(description="Key into `models` for the judge.")
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.0, max_tokens=512),
        description="Judge sampling (greedy by default).",
    )
    batch_size: int = Field(64, ge=1, description="Questions per engine request.")
    concurrency: int = Field(2, ge=1, description="Batches in flight per judge stage.")


class DifficultyConfig(Strict):
    model_path: str | None = Field(None, description="HF sequence-regression folder; none = stage skipped.")
    trust_remote_code: bool = Field(False, description="Run the scorer repo's own code.")
    drop_easiest_share: float = Field(0.0, ge=0.0, lt=1.0, description="Share of scored questions to drop (easiest).")
    batch_size: int = Field(32, ge=1, description="Questions per scoring batch.")
    max_length: int = Field(512, ge=16, description="Token limit per question.")
    num_cpus: float = Field(1.0, ge=0.0, description="Ray CPUs per scorer actor.")
    num_gpus: float = Field(0.0, ge=0.0, description="Ray GPUs per scorer actor.")


class ResponsesConfig(Strict):
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
    batch_size: int = Field(16, ge=1, description="Questions per engine request.")
    concurrency: int = Field(2, ge=1, description="Batches in flight per responses stage.")


class RewardConfig(Strict):
    kind: Literal["agreement", "sequence_classification", "internlm2"] = Field(
        "agreement",
        description="'agreement': majority vote over final answers (no model); 'sequence_classification': any HF "
        "AutoModelForSequenceClassification reward model; 'internlm2': InternLM2-style get_scores (needs "
        "trust_remote_code).",
    )
    model_path: str | None = Field(None, description="Reward model folder or hub id (not for 'agreement').")
    trust_remote_code: bool = Field(False, description="Run the reward repo's own code (required for internlm2).")
    batch_size: int = Field(8, ge=1, description="Questions (each with its n responses) per scoring batch.")
    max_length: int = Field(4096, ge=16, description="Token limit per question+response.")
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
    dir: str = Field("runs", description="Runs are written to <dir>/<name>-<UTC timestamp>/.")
    rows_per_shard: int = Field(10_000, ge=1, description="Most rows per Parquet shard.")


class RayConfig(Strict):
    address: str | None = Field(None, description="Ray cluster address ('auto', 'ray://host:10001'); none = local.")
    num_cpus: int | None = Field(None, ge=1, description="Logical CPUs for a local Ray (may exceed physical cores).")
    object_store_gib: float | None = Field(None, gt=0, description="Object store size for a local Ray.")
    env_vars: dict[str, str] = Field(default_factory=dict, description="Environment for every Ray worker.")


class SynthesisConfig(Strict):
    name: str = Field("scalequest", description="Run name (output folder prefix).")
    seed: int = Field(0, description="Run seed; each row's sampling seed derives from (seed, row id).")
    num_candidates: int = Field(ge=1, description="Questions to draw before filtering.")
    models: dict[str, ModelConfig] = Field(description="Engines by name; stages naming the same model share one.")
    generators: list[GeneratorConfig] = Field(min_length=1, description="Question generators and their shares.")
    language: LanguageConfig = Field(default_factory=LanguageConfig, description="English filter.")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Exact de-duplication.")
    solvability: SolvabilityConfig = Field(description="Solvability judge.")
    difficulty: DifficultyConfig = Field(default_factory=DifficultyConfig, description="Difficulty scorer.")
    responses: ResponsesConfig = Field(description="Solver responses.")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="Response scoring and selection.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Where and how results are written.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray connection and local resources.")

    @field_validator("generators")
    @classmethod
    def _unique_names(cls, gens):
        names = [g.name for g in gens]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"generator names must be unique; repeated: {sorted(dup)}")
        return gens

    @model_validator(mode="after")
    def _model_refs_exist(self):
        refs = [(f"generators.{i}.model", g.model) for i, g in enumerate(self.generators)]
        refs += [("solvability.model", self.solvability.model), ("responses.model", self.responses.model)]
        for key, ref in refs:
            if ref not in self.models:
                raise ValueError(f"{key}: '{ref}' is not a key of `models` (known: {sorted(self.models)})")
        return self

    def config_hash(self) -> str:
        """Short stable hash of the resolved config (recorded in every output row)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def load_config(source: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SynthesisConfig:
    """Read YAML (a path or a packaged name), apply dotted `key=value` overrides, validate once.

    Raises ConfigError naming every bad key, its value and the fix.
    """
    data = apply_overrides(read_yaml(source), overrides)
    try:
        return SynthesisConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def read_yaml(source: str | Path) -> dict:
    """The YAML mapping from a file path or a packaged config name."""
    if str(source) in PACKAGED:
        text = resources.files("scalequest.configs").joinpath(f"{source}.yaml").read_text()
    else:
        path = Path(source)
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
            lines.append(f"  {key}: {err['msg']}{shown}")
    return "\n".join(lines)
