"""The one small interface every generation engine implements, and the values it passes.

An engine turns prompt strings into generations. Stages only see this interface: in tests they get an in-process
`VLLMEngine`; in the pipeline a client of a shared Ray engine actor (`scalequest.pipeline.engine_pool`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class Sampling:
    """How to sample: mirrors the subset of vLLM's SamplingParams ScaleQuest uses."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    n: int = 1

    @classmethod
    def from_config(cls, cfg, *, n: int = 1, extra_stop: Sequence[str] = ()) -> "Sampling":
        """Build from a `SamplingConfig`, adding end-of-turn stops."""
        stop = tuple(dict.fromkeys([*extra_stop, *cfg.stop]))
        return cls(cfg.temperature, cfg.top_p, cfg.max_tokens, stop, n)


@dataclass(frozen=True)
class Generation:
    """One sampled continuation: its text (stop string excluded), token count and why it ended."""

    text: str
    num_tokens: int
    finish_reason: str  # "stop" (end-of-turn or stop string), "length" (hit max_tokens), "error"
    error: str | None = field(default=None)


class Engine(Protocol):
    """Generate `sampling.n` continuations per prompt; `seeds[i]` seeds prompt i (None = unseeded)."""

    model_path: str

    def generate(
        self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]: ...
