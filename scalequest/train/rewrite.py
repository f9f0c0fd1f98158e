"""QPO step (b): the optimizer LLM rewrites a sampled question for solvability OR difficulty (chosen per question
with a seeded RNG), and its marked final line is parsed.

  choose_mode(seed, row_id, difficulty_share) -> 'solvability' | 'difficulty'
  parse_rewrite(text) -> str | None          None = no marker line; '' = marker with nothing after it
  LocalOptimizer(engine, formatter, sampling).complete(prompts, seeds) -> list[Reply]     any scalequest Engine
  OpenAIOptimizer(cfg).complete(prompts, seeds) -> list[Reply]          any OpenAI-compatible endpoint (`openai`)

A call that fails (after the client's retries with backoff) is a `Reply` with `error` set, never an exception.
Test: `pytest tests/train/test_qpo.py`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from scalequest.engines.base import Sampling
from scalequest.errors import ConfigError
from scalequest.prompts import REWRITE_MARKER
from scalequest.stages.generate_questions import row_seed

log = logging.getLogger(__name__)

MODES = ("solvability", "difficulty")
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
# "Rewritten problem:" as asked, plus what models write instead: "Rewritten question", bold, heading, full-width colon.
_MARKER_RE = re.compile(r"rewritten\s+(?:math\s+)?(?:problem|question)\s*[*_]*\s*[:：]", re.IGNORECASE)
_PLACEHOLDER_RE = re.compile(r"<?\s*the complete (?:repaired |harder )?problem\s*>?\.?", re.IGNORECASE)
_WRAPPERS = (("```", "```"), ("**", "**"), ("__", "__"), ("`", "`"), ('"', '"'), ("“", "”"), ("'", "'"),
             ("‘", "’"), ("«", "»"), ("<", ">"), ("*", "*"))


def choose_mode(seed: int, row_id: int, difficulty_share: float) -> str:
    """'difficulty' with probability `difficulty_share`, else 'solvability'; fixed by (seed, row id)."""
    u = random.Random(row_seed(seed, row_id, "qpo-mode")).random()
    return "difficulty" if u < difficulty_share else "solvability"


def parse_rewrite(text) -> str | None:
    """The rewritten question after the LAST marker: the rest of the marker's line, or (when that is blank) the
    next paragraph; quotes, backticks and markdown emphasis around it are removed."""
    if not isinstance(text, str):
        return None
    matches = list(_MARKER_RE.finditer(text))
    if not matches:
        return None
    rest = re.sub(r"^[ \t]*[*_]+", "", text[matches[-1].end():])  # '**Rewritten problem:** ...'
    line, _, after = rest.partition("\n")
    body = line if _unwrap(line) else after.strip().split("\n\n")[0]
    body = _unwrap(body)
    return None if _PLACEHOLDER_RE.fullmatch(body) else body


def _unwrap(text: str) -> str:
    text = text.strip()
    changed = True
    while changed and text:
        changed = False
        for left, right in _WRAPPERS:
            if len(text) >= len(left) + len(right) and text.startswith(left) and text.endswith(right):
                text, changed = text[len(left): len(text) - len(right)].strip(), True
                break
    if text.startswith("```"):  # a fence with a language tag: ```text\n...
        text = text.partition("\n")[2].strip()
    return text


@dataclass(frozen=True)
class Reply:
    """One optimizer answer: its text, or the error that stopped the call; `truncated` = hit max_tokens."""

    text: str | None
    error: str | None = None
    truncated: bool = False


class OptimizerLLM(Protocol):
    name: str

    def complete(self, prompts: Sequence[str], seeds: Sequence[int] | None = None) -> list[Reply]: ...


class LocalOptimizer:
    """The optimizer as a local model: any `Engine` (in-process vLLM, or a Ray engine actor's client).

    `force_marker`: a reply without the marker line is continued with "\n\nRewritten problem:" (greedy, at most
    192 tokens) and the continuation becomes part of its text (`parse_rewrite` then takes the paragraph after it).
    """

    def __init__(self, engine, formatter, sampling: Sampling, force_marker: bool = False):
        self.engine, self.formatter, self.sampling, self.force_marker = engine, formatter, sampling, force_marker
        self.name = f"local:{engine.model_path}"

    def complete(self, prompts, seeds=None) -> list[Reply]:
        chats = [self.formatter.user_prompt(p) for p in prompts]
        outs = self.engine.generate(chats, self.sampling, seeds) if chats else []
        replies = [Reply(None, g.error or "generation error") if g.finish_reason == "error"
                   else Reply(g.text, None, g.finish_reason == "length") for g in (o[0] for o in outs)]
        if self.force_marker:
            replies = self._force(chats, replies)
        log_failures(replies, self.name)
        return replies

    def _force(self, chats: list[str], replies: list[Reply]) -> list[Reply]:
        todo = [i for i, r in enumerate(replies) if r.error is None and parse_rewrite(r.text) is None]
        if not todo:
            return replies
        cue = f"\n\n{REWRITE_MARKER}"
        sampling = Sampling(0.0, 1.0, min(self.sampling.max_tokens, 192), tuple(self.sampling.stop))
        texts = [replies[i].text.rstrip() + cue for i in todo]
        outs = self.engine.generate([chats[i] + t for i, t in zip(todo, texts)], sampling)
        replies = list(replies)
        for i, text, [g] in zip(todo, texts, outs):
            replies[i] = (Reply(None, g.error or "generation error") if g.finish_reason == "error"
                          else Reply(text + g.text, None, g.finish_reason == "length"))
        log.info("optimizer %s: forced the marker on %d of %d replies", self.name, len(todo), len(replies))
        return replies


class OpenAIOptimizer:
    """Any OpenAI-compatible chat endpoint through the `openai` client: retries with exponential backoff
    (`max_retries`), a per-call timeout and at most `concurrency` calls in flight."""

    def __init__(self, cfg, base_url: str | None = None, api_key: str | None = None):
        self.cfg = cfg
        self.base_url = base_url or os.environ.get(cfg.base_url_env) or OPENAI_DEFAULT_URL
        self.api_key = api_key or os.environ.get(cfg.api_key_env)
        if not self.api_key:
            if self.base_url == OPENAI_DEFAULT_URL:
                raise ConfigError(f"train.qpo.optimizer: no API key in ${cfg.api_key_env} for {self.base_url} — "
                                  f"export it, or set ${cfg.base_url_env} to your own OpenAI-compatible server")
            self.api_key = "EMPTY"  # self-hosted servers (vLLM, Ray Serve) accept any key
        self.name = f"openai:{cfg.model}@{self.base_url}"

    def complete(self, prompts, seeds=None) -> list[Reply]:
        prompts = list(prompts)
        seeds = list(seeds) if seeds is not None else [None] * len(prompts)
        replies = asyncio.run(self._all(prompts, seeds)) if prompts else []
        log_failures(replies, self.name)
        return replies

    async def _all(self, prompts, seeds) -> list[Reply]:
        from openai import AsyncOpenAI

        limit = asyncio.Semaphore(self.cfg.concurrency)
        async with AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=self.cfg.max_retries,
                               timeout=self.cfg.timeout_s) as client:
            return list(await asyncio.gather(*(self._one(client, limit, p, s) for p, s in zip(prompts, seeds))))

    async def _one(self, client, limit, prompt: str, seed) -> Reply:
        import openai

        s = self.cfg.sampling
        extra = {"stop": s.stop} if s.stop else {}
        if seed is not None:
            extra["seed"] = seed
        async with limit:
            try:
                resp = await client.chat.completions.create(
                    model=self.cfg.model, messages=[{"role": "user", "content": prompt}], temperature=s.temperature,
                    top_p=s.top_p, max_completion_tokens=s.max_tokens, **extra)
            except openai.APIConnectionError as exc:  # includes timeouts
                return Reply(None, f"cannot reach optimizer endpoint {self.base_url} ({type(exc).__name__}: {exc}) "
                                   f"— check ${self.cfg.base_url_env} and that the server is up")
            except openai.APIStatusError as exc:
                return Reply(None, f"optimizer endpoint {self.base_url} answered HTTP {exc.status_code}: "
                                   f"{exc.message}")
            except Exception as exc:  # noqa: BLE001 — one bad call is a recorded row, never a crashed job
                return Reply(None, f"optimizer call to {self.base_url} failed ({type(exc).__name__}: {exc})")
        if not resp.choices:
            return Reply(None, f"optimizer endpoint {self.base_url} returned no choices")
        choice = resp.choices[0]
        return Reply(choice.message.content or "", None, choice.finish_reason == "length")


def log_failures(replies: list[Reply], name: str) -> None:
    """One summary line per distinct error (calls that failed after retries), so a dead endpoint is obvious."""
    errors = Counter(r.error for r in replies if r.error)
    for error, count in errors.most_common():
        log.error("optimizer %s: %d of %d calls failed: %s", name, count, len(replies), error)
