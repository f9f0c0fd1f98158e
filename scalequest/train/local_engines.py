"""In-process vLLM engines for the training jobs' data steps (QPO sampling / rewriting / judging, fail-rate labels):
one engine per model folder, shared by the steps that name the same folder, closed as soon as none needs it.

The engines run in the driver process, so the config's `ray.env_vars` (e.g. VLLM_CPU_KVCACHE_SPACE, without which
vLLM-CPU asks for 92% of the machine's memory) are applied here as defaults, as a local pipeline run does.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class LocalEngines:
    """`get(model_cfg)` → a `VLLMEngine` (cached by path); `release(keep)` closes the others; a context manager."""

    def __init__(self, env_vars: dict[str, str] | None = None):
        self.env_vars = dict(env_vars or {})
        self.open: dict[str, object] = {}

    def get(self, model):
        if model.path not in self.open:
            from scalequest.engines.vllm_engine import VLLMEngine

            for key, value in self.env_vars.items():
                os.environ.setdefault(key, value)  # the caller's own environment wins
            self.open[model.path] = VLLMEngine(model)
        return self.open[model.path]

    def release(self, keep=frozenset()) -> None:
        for path in [p for p in self.open if p not in keep]:
            log.info("closing engine %s", path)
            self.open.pop(path).close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
