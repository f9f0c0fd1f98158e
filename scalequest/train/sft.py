"""Solver SFT: fine-tune a solver on a synthesis run's kept pairs (and optionally other question + response files),
the step the paper's data exists for.

Each training row is prompt = the question in the solver's user turn with the solver's instruction (exactly what
the pipeline's responses stage and `scalequest eval` send), completion = the kept response + end-of-turn, so the
loss falls on the response only. It runs the same per-worker loop as QFT (`qft.sft_loop`: TRL SFT, DeepSpeed when
train.ray.deepspeed is set) on Ray Train and exports an HF folder that vLLM loads.

    scalequest train sft --config tiny --data runs/tiny-20261201-101500 [RUN_DIR …] [train.sft.max_steps=20 …]
    run_sft(cfg, ["runs/tiny-…"])                      # the same from Python; returns the exported model folder

  kept_pairs(run_dirs) -> [(question, response)]   the kept shards of run folders (local or object storage)
  file_pairs(paths) -> [(question, response)]      JSONL/Parquet with question/problem/query + response/solution/output
  sft_rows(pairs, formatter, instruction, eos) -> [{prompt, completion}]

Test: tests/train/test_sft.py.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.train.qft import SFTLoop

log = logging.getLogger(__name__)

QUESTION_FIELDS = ("question", "problem", "query")
RESPONSE_FIELDS = ("response", "solution", "output")


def kept_pairs(run_dirs: list[str]) -> list[tuple[str, str]]:
    """(question, response) of every kept row under <run>/data/status=kept/, run by run, in id order."""
    import pyarrow.compute as pc

    from scalequest.pipeline.storage import Folder

    pairs = []
    for run in run_dirs:
        kept = Folder(run) / "data" / "status=kept"
        if not kept.files():
            raise ConfigError(f"train sft --data: '{run}' has no kept pairs (data/status=kept/*.parquet) — pass the "
                              "folder of a synthesis run that kept some, as its report prints")
        table = kept.dataset().to_table(columns=["id", "question", "response"])
        table = table.take(pc.sort_indices(table, [("id", "ascending")]))
        pairs += [(q, r) for q, r in zip(table["question"].to_pylist(), table["response"].to_pylist()) if q and r]
    return pairs


def file_pairs(paths: list[str]) -> list[tuple[str, str]]:
    """(question, response) rows of JSONL/Parquet files, from the first present field of each kind."""
    from scalequest.train.data import read_records

    pairs = []
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"train.sft.extra_data: no file at '{path}' — give JSONL or Parquet files")
        rows = read_records(Path(path), "train.sft.extra_data")
        qf = next((f for f in QUESTION_FIELDS if f in rows[0]), None)
        rf = next((f for f in RESPONSE_FIELDS if f in rows[0]), None)
        if qf is None or rf is None:
            raise ConfigError(f"train.sft.extra_data: '{path}' needs a question field ({', '.join(QUESTION_FIELDS)}) "
                              f"and a response field ({', '.join(RESPONSE_FIELDS)}); its first row has "
                              f"{sorted(rows[0])}")
        pairs += [(r[qf].strip(), r[rf].strip()) for r in rows
                  if isinstance(r.get(qf), str) and isinstance(r.get(rf), str) and r[qf].strip() and r[rf].strip()]
    return pairs


def sft_rows(pairs: list[tuple[str, str]], formatter, instruction: str, eos: str) -> list[dict]:
    """TRL prompt/completion rows: the solver's user turn as prompt, the response + end-of-turn as completion."""
    from scalequest.stages.responses import solver_prompt

    return [{"prompt": solver_prompt(formatter, q, instruction), "completion": r.strip() + eos} for q, r in pairs]


def end_of_turn(tokenizer) -> str:
    """The string that ends an assistant turn in the tokenizer's chat template (ChatML '<|im_end|>'), else EOS."""
    probe = tokenizer.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": "MARK"}],
                                          tokenize=False) if getattr(tokenizer, "chat_template", None) else ""
    after = probe.split("MARK", 1)[1] if "MARK" in probe else ""
    eos = after.strip() or getattr(tokenizer, "eos_token", None)
    if not eos:
        raise ConfigError("train.sft.base_model: its tokenizer has neither a chat template nor an EOS token — use a "
                          "chat model as the solver")
    return eos


def fit(rows: list[dict], tokenizer, max_length: int) -> list[dict]:
    """The rows whose prompt leaves room for some of the response within `max_length` tokens (TRL truncates the
    rest; a row whose prompt fills it would train on nothing). ConfigError when none is left."""
    lengths = [len(ids) for ids in tokenizer([r["prompt"] for r in rows], add_special_tokens=False)["input_ids"]]
    kept = [r for r, n in zip(rows, lengths) if n < max_length]
    if len(kept) < len(rows):
        log.warning("SFT: %d of %d prompts fill train.sft.max_length=%d tokens alone: left out", len(rows) - len(kept),
                    len(rows), max_length)
    if not kept:
        raise ConfigError(f"train.sft.max_length: {max_length} tokens do not hold even the prompt of any pair (the "
                          f"shortest has {min(lengths)}) — raise it")
    return kept


def build_sft_job(cfg, data: list[str] | None = None, name: str | None = None) -> tuple[SFTLoop, object, str]:
    """(loop config, resolved RayTrainConfig, run name) for `cfg.train.sft` plus the run folders in `data`, checked
    before Ray starts."""
    from transformers import AutoTokenizer

    from scalequest.engines.chat import ChatFormatter
    from scalequest.runtime import check_model_path
    from scalequest.train.launcher import resolve
    from scalequest.train.qft import grad_accum_steps

    s = cfg.train.sft
    if s is None:
        raise ConfigError("train.sft: missing — add a `train: {sft: {base_model: ..., output_dir: ...}}` section to "
                          "the config (see scalequest/configs/tiny.yaml) or pass train.sft.base_model=PATH")
    check_model_path("train.sft.base_model", s.base_model)
    runs = [*s.data, *(data or [])]
    if not runs and not s.extra_data:
        raise ConfigError("train sft: no data — pass --data RUN_DIR (a synthesis run folder) or set "
                          "train.sft.data / train.sft.extra_data")
    ray_cfg = resolve(cfg.train.ray)
    grad_accum = grad_accum_steps(s, ray_cfg.num_workers, "train.sft")
    base = str(Path(s.base_model).expanduser().resolve()) if Path(s.base_model).expanduser().is_dir() else s.base_model
    pairs = kept_pairs(runs) + file_pairs(s.extra_data)
    if s.max_pairs is not None and len(pairs) > s.max_pairs:
        pairs = random.Random(cfg.seed).sample(pairs, s.max_pairs)
    if not pairs:
        raise ConfigError(f"train sft: no question + response pairs in {runs + s.extra_data}")
    tokenizer = AutoTokenizer.from_pretrained(base)
    eos = end_of_turn(tokenizer)
    instruction = s.instruction if s.instruction is not None else cfg.responses.instruction
    rows = fit(sft_rows(pairs, ChatFormatter(base), instruction, eos), tokenizer, s.max_length)
    log.info("SFT on %d pairs from %d run(s) and %d file(s), end of turn %r, grad accumulation %d", len(rows),
             len(runs), len(s.extra_data), eos, grad_accum)
    output_dir = str(Path(s.output_dir).expanduser().resolve())
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    loop_config = SFTLoop(hparams=s.hparams(), ray=ray_cfg, base_model=base, output_dir=output_dir, rows=rows, eos=eos,
                          seed=cfg.seed)
    return loop_config, ray_cfg, name or f"{cfg.name}-sft-{stamp}"


def run_sft(cfg, data: list[str] | None = None) -> Path:
    """Solver SFT on Ray Train; returns the exported model folder (`train.sft.output_dir`)."""
    from scalequest.train.launcher import run_training
    from scalequest.train.qft import sft_loop

    loop_config, ray_cfg, name = build_sft_job(cfg, data)
    result = run_training(sft_loop, loop_config, ray_cfg, name, cfg.ray)
    log.info("SFT done: model %s, checkpoints %s", loop_config.output_dir, result.path)
    return Path(loop_config.output_dir)
