"""Model scorers: an HF sequence-regression model (difficulty; `AutoModelForSequenceClassification` reward models)
and InternLM2-style reward models that expose `get_scores(tokenizer, chats)` through their own remote code.

  SequenceScorer.score(texts) -> list[float]                 (logit 0 of a num_labels=1 head)
  SequenceScorer.score_pairs(questions, responses) -> list[float]   (the pair as a user/assistant chat)
  InternLM2Scorer.score_pairs(questions, responses) -> list[float]
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _chat(question: str, response: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": response}]


class SequenceScorer:
    """Batched scoring with any `AutoModelForSequenceClassification` folder or hub id."""

    def __init__(self, model_path: str, trust_remote_code: bool = False, batch_size: int = 16, max_length: int = 512):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = _device()
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        log.info("loading sequence scorer %s on %s", model_path, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_path, trust_remote_code=trust_remote_code, dtype=dtype
        ).to(self.device).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size, self.max_length = batch_size, max_length

    def score(self, texts: list[str]) -> list[float]:
        import torch

        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start: start + self.batch_size]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length).to(self.device)
            with torch.inference_mode():
                logits = self.model(**enc).logits
            out.extend(logits[:, 0].float().tolist())
        return out

    def score_pairs(self, questions: list[str], responses: list[str]) -> list[float]:
        if getattr(self.tokenizer, "chat_template", None):
            texts = [self.tokenizer.apply_chat_template(_chat(q, r), tokenize=False) for q, r in zip(questions, responses)]
        else:
            texts = [f"Question: {q}\n\nAnswer: {r}" for q, r in zip(questions, responses)]
        return self.score(texts)


class InternLM2Scorer:
    """InternLM2-Reward (and models with the same remote-code API): `model.get_scores(tokenizer, chats)`."""

    def __init__(self, model_path: str, batch_size: int = 8):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.device = _device()
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        log.info("loading InternLM2-style reward model %s on %s", model_path, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=True)
        self.model = AutoModel.from_pretrained(model_path, trust_remote_code=True, dtype=dtype).to(self.device).eval()
        if not hasattr(self.model, "get_scores"):
            raise TypeError(f"{model_path}: model has no get_scores(); use reward.kind: sequence_classification")
        self.batch_size = batch_size

    def score_pairs(self, questions: list[str], responses: list[str]) -> list[float]:
        import torch

        chats = [_chat(q, r) for q, r in zip(questions, responses)]
        out: list[float] = []
        for start in range(0, len(chats), self.batch_size):
            with torch.inference_mode():
                scores = self.model.get_scores(self.tokenizer, chats[start: start + self.batch_size])
            out.extend([scores] if isinstance(scores, float) else list(scores))
        return [float(s) for s in out]


def build_reward_scorer(cfg):
    """The scorer for a `RewardConfig` whose kind needs a model."""
    if cfg.kind == "sequence_classification":
        return SequenceScorer(cfg.model_path, cfg.trust_remote_code, cfg.batch_size * 4, cfg.max_length)
    if cfg.kind == "internlm2":
        return InternLM2Scorer(cfg.model_path, cfg.batch_size)
    raise ValueError(f"reward kind '{cfg.kind}' has no model scorer")
