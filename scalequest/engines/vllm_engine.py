"""vLLM engines behind the `Engine` interface: `VLLMEngine` (in-process, blocking) and `AsyncVLLMEngine` (the
continuous-batching engine that a Ray actor or Serve replica hosts, so many stages' requests share one batch).

Both take a `ModelConfig`. Import cost (vllm, torch) is paid in the constructors, not at module import.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Sequence

from scalequest.engines.base import Generation, Sampling

log = logging.getLogger(__name__)
DEAD_POLL_S = 1.0  # how often a waiting request checks whether vLLM's engine died


def engine_kwargs(cfg) -> dict:
    """vLLM engine keyword arguments from a `ModelConfig`."""
    kwargs = dict(
        model=cfg.path,
        dtype=cfg.dtype,
        max_model_len=cfg.max_model_len,
        max_num_seqs=cfg.max_num_seqs,
        enforce_eager=cfg.enforce_eager,
        trust_remote_code=cfg.trust_remote_code,
        tensor_parallel_size=cfg.tensor_parallel_size,
    )
    if cfg.num_gpus > 0:
        kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        if cfg.tensor_parallel_size > 1:  # workers in the replica's placement group (plan.engine_bundles)
            kwargs["distributed_executor_backend"] = "ray"
    elif _on_cpu():
        # vLLM-CPU crashes the engine ("CPU Generator does not use offset") when a request with its own seed is
        # prefilled in chunks; without chunked prefill the token budget must hold a whole prompt.
        kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=max(cfg.max_model_len, 4096))
    kwargs.update(cfg.engine_kwargs)
    return kwargs


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


class _StopTokens:
    """Splits stop strings into text stops and token ids: special tokens such as <|im_end|> are skipped when
    detokenizing, so as text stops they would never match."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special = set(getattr(tokenizer, "all_special_tokens", []))
        self.special |= {str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()}

    def split(self, stops: Sequence[str]) -> tuple[list[str], list[int]]:
        texts, ids = [], []
        for s in stops:
            if s in self.special:
                ids.append(self.tokenizer.convert_tokens_to_ids(s))
            else:
                texts.append(s)
        return texts, ids


def sampling_params(sampling: Sampling, seed: int | None, stops: _StopTokens, stream: bool = False):
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    text_stops, stop_ids = stops.split(sampling.stop)
    return SamplingParams(
        n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
        stop=text_stops or None, stop_token_ids=stop_ids or None, seed=seed,
        # FINAL_ONLY: the async engine otherwise streams, and its last output of an n>1 request holds only the
        # last finisher; DELTA (stream): each output holds the new text of the choices that moved
        output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
    )


def to_generations(request_output) -> list[Generation]:
    outs = sorted(request_output.outputs, key=lambda o: o.index)
    return [Generation(o.text, len(o.token_ids), o.finish_reason or "length") for o in outs]


def _seeds(prompts, seeds):
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
    return [None] * len(prompts) if seeds is None else [None if s is None else int(s) for s in seeds]


class VLLMEngine:
    """In-process `vllm.LLM`. Used by tests, benchmarks and single-process tools. Thread-safe (calls serialize)."""

    def __init__(self, cfg):
        from vllm import LLM

        self._lock = threading.Lock()  # vllm.LLM is not safe to call from two threads at once
        self.model_path = cfg.path
        log.info("loading vLLM engine for %s", cfg.path)
        self.llm = LLM(**engine_kwargs(cfg))
        self._stops = _StopTokens(self.llm.get_tokenizer())

    def generate(self, prompts, sampling: Sampling, seeds=None) -> list[list[Generation]]:
        prompts = list(prompts)
        if not prompts:
            return []
        params = [sampling_params(sampling, s, self._stops) for s in _seeds(prompts, seeds)]
        with self._lock:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [to_generations(o) for o in outputs]

    def close(self) -> None:
        """Stop the engine's worker processes now (instead of at interpreter exit)."""
        self.llm.llm_engine.engine_core.shutdown()


class AsyncVLLMEngine:
    """vLLM's async engine: every concurrent `agenerate` call joins the same continuous batch."""

    def __init__(self, cfg):
        import vllm
        from transformers import AutoTokenizer

        self.model_path = cfg.path
        log.info("loading async vLLM engine for %s", cfg.path)
        self.engine = vllm.AsyncLLMEngine.from_engine_args(vllm.AsyncEngineArgs(**engine_kwargs(cfg)))
        tok = AutoTokenizer.from_pretrained(cfg.path, trust_remote_code=cfg.trust_remote_code)
        self._stops = _StopTokens(tok)

    async def _one(self, prompt: str, params) -> list[Generation]:
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            final = await self._unless_dead(self._final(prompt, params))
        except EngineDeadError:
            raise  # every later request would fail too: the caller restarts the engine or stops
        except Exception as exc:  # one bad request (e.g. prompt too long) must not fail its batch
            log.warning("generation failed: %s", exc)
            return [Generation("", 0, "error", f"{type(exc).__name__}: {exc}")] * params.n
        return to_generations(final)

    async def _final(self, prompt: str, params):
        final = None
        async for out in self.engine.generate(prompt, params, uuid.uuid4().hex):
            final = out
        return final

    async def _unless_dead(self, coro):
        """Await `coro`, raising EngineDeadError once vLLM's engine is dead. vLLM 0.32 fails only the requests it
        holds when its engine core dies; one added after that would wait forever."""
        from vllm.v1.engine.exceptions import EngineDeadError

        task = asyncio.ensure_future(coro)
        while True:
            if self.engine.errored:
                task.cancel()
                raise EngineDeadError()
            done, _ = await asyncio.wait({task}, timeout=DEAD_POLL_S)
            if done:
                return task.result()

    async def agenerate(self, prompts, sampling: Sampling, seeds=None) -> list[list[Generation]]:
        prompts = list(prompts)
        params = [sampling_params(sampling, s, self._stops) for s in _seeds(prompts, seeds)]
        return list(await asyncio.gather(*(self._one(p, sp) for p, sp in zip(prompts, params))))

    async def astream(self, prompt: str, sampling: Sampling, seed: int | None = None):
        """Yield `(choice index, new text, finish reason or None, new tokens)` while vLLM decodes `sampling.n`
        choices for one prompt (stop strings excluded, as in `agenerate`). Raises EngineDeadError once the engine
        is dead."""
        from vllm.v1.engine.exceptions import EngineDeadError

        if self.engine.errored:  # vLLM 0.32 would hold a request added after its engine died forever
            raise EngineDeadError()
        params = sampling_params(sampling, seed, self._stops, stream=True)
        tokens: dict[int, int] = {}  # of steps without text yet (a token that ends inside a UTF-8 character)
        async for out in self.engine.generate(prompt, params, uuid.uuid4().hex):
            for c in out.outputs:
                tokens[c.index] = tokens.get(c.index, 0) + len(c.token_ids)
                if c.text or c.finish_reason:
                    yield c.index, c.text, c.finish_reason, tokens.pop(c.index)
        if self.engine.errored:
            raise EngineDeadError()

    def shutdown(self):
        self.engine.shutdown()
