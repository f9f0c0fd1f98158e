"""Sync adapters over Serve deployment handles, so the Ray-free stages (which call `engine.generate(...)` and
`scorer.score_pairs(...)`) run unchanged inside the ingress. Call them from a worker thread, never from the
event loop: `DeploymentResponse.result()` blocks.
"""

from __future__ import annotations


class DeploymentEngine:
    """The `Engine` interface (scalequest.engines.base) over an `LLMServer` handle."""

    def __init__(self, handle, model_path: str):
        self.handle, self.model_path = handle, model_path

    def generate(self, prompts, sampling, seeds=None):
        prompts = list(prompts)
        if not prompts:
            return []
        return self.handle.generate.remote(prompts, sampling, None if seeds is None else list(seeds)).result()


class DeploymentRewardScorer:
    """`score_pairs(questions, responses)` over the `ScorerServer` handle."""

    def __init__(self, handle):
        self.handle = handle

    def score_pairs(self, questions, responses):
        return self.handle.score_pairs.remote(list(questions), list(responses)).result()


class DeploymentDifficultyScorer:
    """`score(texts)` over the `ScorerServer` handle."""

    def __init__(self, handle):
        self.handle = handle

    def score(self, texts):
        return self.handle.score_difficulty.remote(list(texts)).result()
