"""QPO data run: start the engines the config names (the pipeline's engine actors, `engine_pool.EngineSet`: one per
model folder, shared where the QFT model, the local optimizer and the solvability judge are the same), sample →
rewrite → judge → pair, write the Parquet files. `build_qpo_data(cfg, out_dir)` is called by `run_qpo`.

Test: `pytest tests/train/test_qpo.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from scalequest.config import ModelConfig
from scalequest.engines.base import Sampling
from scalequest.engines.chat import ChatFormatter
from scalequest.errors import ConfigError
from scalequest.train.qpo_data import (
    label_rows,
    pairs_and_drops,
    rewrite_rows,
    sample_questions,
    split_holdout,
    write_qpo_data,
)
from scalequest.train.rewrite import LocalOptimizer, OpenAIOptimizer

log = logging.getLogger(__name__)


def prompt_and_stops(q) -> tuple[str, list[str]]:
    """(DPO prompt = pre-query prefix + hint, end-of-turn stops) for the QFT model of `train.qpo`."""
    prefix, stops = ChatFormatter(q.qft_model).prefix(q.template, q.prefix)
    return prefix + q.hint, stops


def build_qpo_data(cfg, out_dir: Path) -> Path:
    """Sample `train.qpo.num_samples` questions, rewrite, judge, pair; write rewrites.parquet, pairs.parquet and
    pairs.drops.json under `out_dir`. Returns the pairs path."""
    q = cfg.train.qpo
    local = q.optimizer.kind == "local"
    if local and q.optimizer.model not in cfg.models:
        raise ConfigError(f"train.qpo.optimizer.model: '{q.optimizer.model}' is not a key of `models` (known: "
                          f"{sorted(cfg.models)}) — a local optimizer names one of the config's models")
    judge_model = cfg.models[cfg.solvability.model] if q.drop_unsolvable else None
    optimizer_model = cfg.models[q.optimizer.model] if local else None
    from scalequest.pipeline.engine_pool import EngineSet

    with EngineSet(cfg.ray) as engines:
        prompt, stops = prompt_and_stops(q)
        qft = ModelConfig(path=q.qft_model, **q.qft_engine)
        samples = sample_questions(engines.get(qft, "qft"), prompt, stops, q.sampling, q.num_samples, cfg.seed)
        engines.release({m.path for m in (optimizer_model, judge_model) if m})
        sampled = [r for r in samples if r["reject_reason"] is None]
        if local:
            optimizer = LocalOptimizer(engines.get(optimizer_model, q.optimizer.model), _formatter(optimizer_model),
                                       Sampling.from_config(q.optimizer.sampling), q.optimizer.force_marker)
        else:
            optimizer = OpenAIOptimizer(q.optimizer)
        rows = rewrite_rows(sampled, optimizer, cfg.seed, q.difficulty_share)
        engines.release({judge_model.path} if judge_model else set())
        judge = _judge(cfg, engines.get(judge_model, cfg.solvability.model)) if judge_model else None
        labelled = label_rows(rows, judge)
    pairs, drops = pairs_and_drops(labelled)
    pairs = split_holdout(pairs, q.holdout_share, cfg.seed)
    stats = {"sampled": len(samples), "sample_rejects": _count(r["reject_reason"] for r in samples),
             "rewritten": len(rows), "optimizer": optimizer.name, "drops": drops,
             "modes": _count(p["mode"] for p in pairs)}
    return write_qpo_data(out_dir, labelled, pairs, stats)


def _formatter(model: ModelConfig) -> ChatFormatter:
    return ChatFormatter(model.path, model.trust_remote_code)


def _judge(cfg, engine):
    from scalequest.stages.solvability import JudgeSolvability

    s = cfg.solvability.model_copy(update={"enabled": True})
    return JudgeSolvability(s, engine, _formatter(cfg.models[s.model]))


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        if v is not None:
            out[v] = out.get(v, 0) + 1
    return out
