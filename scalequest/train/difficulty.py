"""Difficulty scorer: a base LM with a one-output regression head (MSE) trained on difficulty labels (MATH level or
the solver's fail rate, see `difficulty_labels`), exported as the folder the pipeline's difficulty stage loads
(`difficulty.model_path`, read with `SequenceScorer`).

  run_difficulty(cfg) -> model folder    labels → train (Ray Train, or in-process) → Spearman report.json
  difficulty_loop(config)                the training loop (in-process or a Ray Train worker loop)
  evaluate_difficulty(model_dir, ...)    Spearman with MATH level on the eval file and with held-out labels

Run: `scalequest train difficulty --config tiny`. Test: `pytest tests/train/test_difficulty.py`.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

from scalequest.config import DifficultyTrainConfig
from scalequest.train import loop_utils
from scalequest.train.difficulty_labels import level_label, load_labelled, read_problems

log = logging.getLogger(__name__)


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties, as scipy.stats.spearmanr); None when undefined (fewer
    than 2 pairs, or one side constant). pandas' DataFrame.corr computes it without scipy."""
    import pandas as pd

    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} values against {len(y)}")
    if len(x) < 2:
        return None
    rho = pd.DataFrame({"x": list(x), "y": list(y)}, dtype=float).corr(method="spearman").loc["x", "y"]
    return None if math.isnan(rho) else float(rho)


class DifficultyLoop(loop_utils.LoopConfig):
    """`difficulty_loop`'s config: rows are {question, label}."""

    hparams: DifficultyTrainConfig


def difficulty_loop(config: dict) -> dict:
    """Train the regression head + LM on the rows and export the scorer to output_dir (a `DifficultyLoop`)."""
    import datasets
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    c, ray_train = loop_utils.start(config, DifficultyLoop)
    hp = c.hparams
    tok = AutoTokenizer.from_pretrained(c.base_model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        c.base_model, num_labels=1, problem_type="regression", dtype="float32")
    model.config.pad_token_id = tok.pad_token_id  # the head pools the last non-pad token
    if hp.train_top_layers is not None:
        freeze_below(model, hp.train_top_layers)
    rows = loop_utils.train_rows(c, ray_train)
    # The head has no bias and starts random (outputs ~±1): start it at zero and learn labels minus their mean,
    # so the first steps learn difficulty instead of an offset. Scores rank the same; the mean is recorded.
    mean = sum(float(r["label"]) for r in rows) / len(rows)
    model.config.scalequest_label_mean = mean
    _zero_head(model)
    ds = datasets.Dataset.from_list([{"text": r["question"], "label": float(r["label"]) - mean} for r in rows])
    ds = ds.map(lambda b: tok(b["text"], truncation=True, max_length=hp.max_length), batched=True,
                remove_columns=["text"])
    args = loop_utils.training_args(
        TrainingArguments, c, ray_train,
        train_sampling_strategy="group_by_length")  # batches of similar length: far less padding to compute
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok),
                      processing_class=tok)
    return loop_utils.train(trainer, c, ray_train, label_mean=mean)


def _zero_head(model) -> None:
    import torch

    prefix = model.base_model_prefix + "."
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith(prefix):
                param.zero_()


def freeze_below(model, top_layers: int) -> int:
    """Freeze the backbone except its top `top_layers` blocks and what follows them (final norm); the head stays
    trainable. Returns the number of trainable parameters."""
    import torch

    base = model.base_model
    blocks = max((m for m in base.modules() if isinstance(m, torch.nn.ModuleList)), key=len)
    for p in base.parameters():
        p.requires_grad_(False)
    for block in list(blocks)[len(blocks) - top_layers:] if top_layers else []:
        block.requires_grad_(True)
    for name, module in base.named_children():
        if module is not blocks and not isinstance(module, torch.nn.Embedding):
            module.requires_grad_(True)  # the final norm
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("training the head + top %d of %d blocks: %d parameters", top_layers, len(blocks), trainable)
    return trainable


def evaluate_difficulty(model_dir, eval_path=None, max_eval: int | None = 500, holdout: list[dict] | None = None,
                        *, seed: int = 0, max_length: int = 256, batch_size: int = 32) -> dict:
    """Score questions with the exported model (`SequenceScorer`, as the pipeline does) and report Spearman:
    with MATH level on `eval_path` (a seeded sample of `max_eval` rows with a known level), and with the label
    on `holdout` rows ({question, label})."""
    from scalequest.engines.scorers import SequenceScorer

    scorer = SequenceScorer(str(model_dir), batch_size=batch_size, max_length=max_length)
    report: dict = {}
    if eval_path:
        rows, _ = read_problems([eval_path], benchmark=True)
        rows = [(r["question"], lab) for r in rows if (lab := level_label(r["level"])) is not None]
        if max_eval and len(rows) > max_eval:
            rows = random.Random(seed).sample(rows, max_eval)
        scores = score_by_length(scorer, [q for q, _ in rows])
        report["eval_file"] = str(eval_path)
        report["eval_questions"] = len(rows)
        report["spearman_math_level"] = spearman(scores, [lab for _, lab in rows])
        # what the question's length alone achieves (harder MATH problems are longer): the bar to beat
        lengths = [len(ids) for ids in scorer.tokenizer([q for q, _ in rows])["input_ids"]]
        report["spearman_math_level_length_baseline"] = spearman(lengths, [lab for _, lab in rows])
        report["eval_mean_score_by_level"] = _mean_by(scores, [lab for _, lab in rows])
    if holdout:
        scores = score_by_length(scorer, [r["question"] for r in holdout])
        report["holdout_questions"] = len(holdout)
        report["spearman_holdout_label"] = spearman(scores, [r["label"] for r in holdout])
        lengths = [len(ids) for ids in scorer.tokenizer([r["question"] for r in holdout])["input_ids"]]
        report["spearman_holdout_length_baseline"] = spearman(lengths, [r["label"] for r in holdout])
    return report


def score_by_length(scorer, texts: list[str]) -> list[float]:
    """`scorer.score` over texts sorted by length (batches pad to their longest text), returned in input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    scores = scorer.score([texts[i] for i in order])
    out = [0.0] * len(texts)
    for i, s in zip(order, scores):
        out[i] = s
    return out


def _mean_by(scores, labels) -> dict:
    groups: dict[str, list[float]] = {}
    for s, lab in zip(scores, labels):
        groups.setdefault(f"{lab:.2f}", []).append(s)
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(groups.items())}


def run_difficulty(cfg, *, in_process: bool = False) -> Path:
    """Label, train (Ray Train per `train.ray`, or in this process), export to `train.difficulty.output_dir`, and
    write `report.json` (label stats, losses, Spearman figures) and the resolved config next to the model."""
    import yaml

    d = cfg.train.difficulty
    if d is None:
        from scalequest.errors import ConfigError

        raise ConfigError("train.difficulty: missing — add a train.difficulty block (see the packaged tiny.yaml)")
    loop_utils.grad_accum(d.effective_batch, d.per_device_batch, 1 if in_process else cfg.train.ray.num_workers,
                          "train.difficulty")  # checked before labelling, which may run a solver for hours
    rows, stats = load_labelled(cfg)
    n_hold = int(len(rows) * d.holdout_share)
    holdout, train_rows = rows[:n_hold], rows[n_hold:]
    c = DifficultyLoop(hparams=d, ray=cfg.train.ray, base_model=loop_utils.local_path(d.base_model),
                       output_dir=str(Path(d.output_dir).resolve()), seed=cfg.seed,
                       rows=[{"question": r["question"], "label": float(r["label"])} for r in train_rows])
    result = loop_utils.run(difficulty_loop, c, "difficulty", cfg, in_process=in_process)
    out = Path(d.output_dir)
    report = {"labels": {**stats, "train": len(train_rows), "holdout": len(holdout)},
              "training": {k: v for k, v in (result or {}).items() if k != "log_history"},
              **evaluate_difficulty(out, d.eval_data, d.max_eval, holdout[: d.max_eval], seed=cfg.seed,
                                    max_length=d.max_length)}
    loop_utils.write_json(out / "report.json", report)
    (out / "scalequest-config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    log.info("difficulty scorer: %s (Spearman vs MATH level %s, vs held-out label %s)", out,
             report.get("spearman_math_level"), report.get("spearman_holdout_label"))
    return out
