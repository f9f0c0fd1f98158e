"""The model-hosting Serve deployments: `LLMServer` (one per model, over vLLM's async engine, so concurrent
requests from every route join one continuous batch) and `ScorerServer` (the reward model and the difficulty
model).

Options (replicas, autoscaling, CPUs/GPUs) are applied by `scalequest.serve.app` from the `serve` config
section.
"""

from __future__ import annotations

import logging

from ray import serve

from scalequest.errors import EngineUnavailable

log = logging.getLogger(__name__)


@serve.deployment
class LLMServer:
    """Hosts an `AsyncVLLMEngine` for one `ModelConfig` (a dict: Serve's config stays plain data)."""

    def __init__(self, model_cfg: dict):
        from scalequest.config import ModelConfig
        from scalequest.engines.vllm_engine import AsyncVLLMEngine

        self.cfg = ModelConfig(**model_cfg)
        self.engine = AsyncVLLMEngine(self.cfg)
        self.dead = False  # set when a request met the dead engine, in case vLLM's flag lags

    async def generate(self, prompts: list[str], sampling, seeds: list[int | None] | None = None):
        """`Engine.generate` over the deployment: `sampling.n` `Generation`s per prompt. Raises
        `EngineUnavailable` once vLLM's engine is dead (the ingress answers 503; Serve replaces the replica)."""
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            return await self.engine.agenerate(prompts, sampling, seeds)
        except EngineDeadError:
            self.dead = True
            log.error("vLLM engine for %s is dead; Serve replaces this replica at its next health check",
                      self.cfg.path)
            raise EngineUnavailable(f"the engine for {self.cfg.path} is dead; its replica is being replaced") \
                from None

    async def stream(self, prompt: str, sampling, seed: int | None = None):
        """Streamed `generate` of one prompt (call it with `handle.options(stream=True)`): yields `(choice index,
        new text, finish reason or None, new tokens)` as vLLM decodes."""
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            async for item in self.engine.astream(prompt, sampling, seed):
                yield item
        except EngineDeadError:
            self.dead = True
            raise EngineUnavailable(f"the engine for {self.cfg.path} is dead; its replica is being replaced") \
                from None

    def health(self) -> str:
        """'ok' while vLLM's engine runs (for the ingress's /healthz); raises EngineUnavailable otherwise."""
        self.check_health()
        return "ok"

    def check_health(self):
        # vLLM's engine dies for good when its engine-core or worker process dies (its monitor thread sets
        # `errored`); Serve then replaces this replica (tests/serve/test_engine_death.py measures how fast)
        if self.dead or getattr(self.engine.engine, "errored", False):
            raise EngineUnavailable(f"vLLM engine for {self.cfg.path} has errored")


@serve.deployment
class ScorerServer:
    """The reward model (`reward.*`, unless kind is 'agreement') and the difficulty model
    (`difficulty.model_path`).

    `score_pairs(questions, responses)` and `score_difficulty(texts)` return floats; either raises ValueError
    when its model is not configured (the ingress checks before calling).
    """

    def __init__(self, reward_cfg: dict, difficulty_cfg: dict):
        from scalequest.config import DifficultyConfig, RewardConfig
        from scalequest.engines.scorers import SequenceScorer, build_reward_scorer

        reward, difficulty = RewardConfig(**reward_cfg), DifficultyConfig(**difficulty_cfg)
        self.reward = build_reward_scorer(reward) if reward.kind != "agreement" else None
        self.difficulty = None
        if difficulty.model_path:
            self.difficulty = SequenceScorer(difficulty.model_path, difficulty.trust_remote_code,
                                             difficulty.batch_size, difficulty.max_length)

    def score_pairs(self, questions: list[str], responses: list[str]) -> list[float]:
        if self.reward is None:
            raise ValueError("no reward model configured (reward.kind is 'agreement')")
        return self.reward.score_pairs(questions, responses)

    def health(self) -> str:
        return "ok"

    def score_difficulty(self, texts: list[str]) -> list[float]:
        if self.difficulty is None:
            raise ValueError("no difficulty model configured (difficulty.model_path)")
        return self.difficulty.score(texts)
