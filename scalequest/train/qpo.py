"""QPO: question preference optimization. Preference data from the QFT model and an optimizer LLM (`qpo_data`),
then DPO with TRL's `DPOTrainer` (prompt = pre-query prefix, chosen/rejected = question + end-of-turn, reference =
the QFT model), exported as a generator folder vLLM loads.

  run_qpo(cfg) -> model folder     data → DPO (Ray Train, or in-process) → preference report.json
  dpo_loop(config)                 the training loop (in-process or a Ray Train worker loop)
  preference_accuracy(model_dir, ref_dir, pairs)    how often the model prefers chosen over rejected

Run: `scalequest train qpo --config tiny`. Test: `pytest tests/train/test_qpo.py`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from scalequest.config import QPOConfig
from scalequest.errors import ConfigError
from scalequest.train import loop_utils
from scalequest.train.qpo_data import read_pairs

log = logging.getLogger(__name__)


def with_end(text: str, end_of_turn: str) -> str:
    """A question as the generator should write it: text + end-of-turn."""
    return text if not end_of_turn or text.endswith(end_of_turn) else text + end_of_turn


class DPOLoop(loop_utils.LoopConfig):
    """`dpo_loop`'s config: base_model is the QFT model (policy start and reference); rows are {prompt, chosen,
    rejected} with the end of turn on both questions (`dpo_rows`)."""

    hparams: QPOConfig


def dpo_rows(pairs: list[dict], end_of_turn: str) -> list[dict]:
    """TRL preference rows from pairs: chosen/rejected as the generator should write them (text + end of turn)."""
    return [{"prompt": p["prompt"], "chosen": with_end(p["chosen"], end_of_turn),
             "rejected": with_end(p["rejected"], end_of_turn)} for p in pairs]


def dpo_loop(config: dict) -> dict:
    """DPO on `config`'s rows from (and referenced to) the QFT model, exported to output_dir (a `DPOLoop`)."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    c, ray_train = loop_utils.start(config, DPOLoop)
    tok = AutoTokenizer.from_pretrained(c.base_model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    # fp32 master weights: at DPO's learning rate (5e-7) bf16 weights would not move at all
    model = AutoModelForCausalLM.from_pretrained(c.base_model, dtype="float32")
    ds = datasets.Dataset.from_list(loop_utils.train_rows(c, ray_train))
    args = loop_utils.training_args(DPOConfig, c, ray_train, beta=c.hparams.beta, max_length=c.hparams.max_length)
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)  # ref = a copy of the model
    return loop_utils.train(trainer, c, ray_train)


def completion_logps(model, tok, prompt: str, completions: list[str]) -> list[tuple[float, int]]:
    """(summed log-probability, token count) of each completion after `prompt` (tokenized as TRL does: the
    completion starts where prompt and prompt+completion token ids diverge)."""
    import torch

    prompt_ids = tok(prompt)["input_ids"]
    seqs, starts = [], []
    for c in completions:
        ids = tok(prompt + c)["input_ids"]
        start = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), min(len(prompt_ids), len(ids)))
        seqs.append(ids)
        starts.append(max(start, 1))
    width = max(len(s) for s in seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
    logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None])[..., 0]
    return [(float(logps[k, starts[k] - 1: len(s) - 1].sum()), len(s) - starts[k]) for k, s in enumerate(seqs)]


def preference_accuracy(model_dir, ref_dir, pairs: list[dict], end_of_turn: str = "") -> dict:
    """How often the model at `model_dir` prefers the chosen question of `pairs` over the rejected one:
    `prefers_chosen` by summed log-probability (the quantity DPO moves), `prefers_chosen_per_token` by mean
    log-probability per token (rewrites are often longer, which alone lowers their sum). With `ref_dir`, also
    DPO's implicit-reward accuracy against that reference: (logp_c − ref_c) > (logp_r − ref_r). Ties count as not
    preferring."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(path):
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    models = {"model": load(model_dir), **({"ref": load(ref_dir)} if ref_dir else {})}
    margins, per_token = {name: [] for name in models}, []
    for p in pairs:
        texts = [with_end(p["chosen"], end_of_turn), with_end(p["rejected"], end_of_turn)]
        for name, m in models.items():
            (c, nc), (r, nr) = completion_logps(m, tok, p["prompt"], texts)
            margins[name].append(c - r)
            if name == "model":
                per_token.append(c / max(nc, 1) - r / max(nr, 1))
    n = len(pairs)
    out = {"pairs": n, "prefers_chosen": _share(m > 0 for m in margins["model"]) if n else None,
           "prefers_chosen_per_token": _share(m > 0 for m in per_token) if n else None,
           "mean_logp_margin": sum(margins["model"]) / n if n else None}
    if ref_dir:
        implicit = [a - b for a, b in zip(margins["model"], margins["ref"])]
        out["implicit_reward_accuracy"] = _share(d > 0 for d in implicit) if n else None
        out["mean_implicit_margin"] = sum(implicit) / n if n else None
    return out


def _share(flags) -> float:
    flags = list(flags)
    return sum(flags) / len(flags)


def run_qpo(cfg, *, in_process: bool = False) -> Path:
    """Build (or reuse `train.qpo.pairs`) the preference data, run DPO (Ray Train per `train.ray`, or in this
    process), export to `train.qpo.output_dir`, and write report.json with the preference rates of the QFT model
    and the trained model on held-out (and training) pairs, plus the resolved config."""
    import yaml

    from scalequest.runtime import check_model_path
    from scalequest.train.qpo_build import build_qpo_data, prompt_and_stops

    q = cfg.train.qpo
    if q is None:
        raise ConfigError("train.qpo: missing — add a train.qpo block (see the packaged tiny.yaml)")
    check_model_path("train.qpo.qft_model", q.qft_model)
    loop_utils.grad_accum(q.effective_batch, q.per_device_batch, 1 if in_process else cfg.train.ray.num_workers,
                          "train.qpo")  # checked here, before any engine or Ray worker starts
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    data_dir = Path(q.data_dir) / f"{cfg.name}-{stamp}"
    pairs_file = Path(q.pairs) if q.pairs else build_qpo_data(cfg, data_dir)
    _, stops = prompt_and_stops(q)
    end_of_turn = stops[0] if stops else ""
    train_pairs = read_pairs(pairs_file, "train")
    if not train_pairs:
        raise ConfigError(f"train.qpo: no 'train' pairs in {pairs_file} — sample more questions "
                          "(train.qpo.num_samples) or check the drop counts in pairs.drops.json")
    c = DPOLoop(hparams=q, ray=cfg.train.ray, base_model=loop_utils.local_path(q.qft_model),
                output_dir=str(Path(q.output_dir).resolve()), work_dir=str(data_dir.resolve()), seed=cfg.seed,
                rows=dpo_rows(train_pairs, end_of_turn))
    result = loop_utils.run(dpo_loop, c, "qpo", cfg, in_process=in_process)
    report = {"pairs_file": str(pairs_file), "training": {k: v for k, v in (result or {}).items()
                                                          if k != "log_history"}}
    for split in ("holdout", "train"):
        pairs = read_pairs(pairs_file, split)[:200]
        report[split] = {"qft": preference_accuracy(q.qft_model, None, pairs, end_of_turn),
                         "trained": preference_accuracy(q.output_dir, q.qft_model, pairs, end_of_turn)}
    drops = pairs_file.with_name("pairs.drops.json")
    if drops.is_file():
        import json

        report["data"] = json.loads(drops.read_text())
    out = Path(q.output_dir)
    loop_utils.write_json(out / "report.json", report)
    (out / "scalequest-config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    log.info("QPO: %s — held-out pairs preferring chosen: QFT %s, trained %s", out,
             report["holdout"]["qft"]["prefers_chosen"], report["holdout"]["trained"]["prefers_chosen"])
    return out
