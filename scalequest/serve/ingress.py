"""The FastAPI ingress deployment: ScaleQuest routes (/v1/questions, /v1/score), OpenAI-compatible routes
(/v1/models, /v1/completions, /v1/chat/completions), /healthz and the OpenAPI schema (/openapi.json, /docs).

Every failure caused by the request is a 4xx in OpenAI's error format; an optional bearer token (read from the
env var `serve.auth_token_env` when the replica starts) guards every route but /healthz.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from ray import serve

from scalequest.serve.schemas import (
    APIError,
    ChatRequest,
    CompletionRequest,
    QuestionsRequest,
    ScoreRequest,
    check_limit,
    check_text,
)

log = logging.getLogger(__name__)


@serve.deployment
@serve.ingress()
class Ingress:
    """`cfg`: the SynthesisConfig as a dict; `llms`: model key → LLMServer handle; `scorer`: ScorerServer
    handle."""

    def __init__(self, cfg: dict, llms: dict, scorer):
        from scalequest.config import SynthesisConfig
        from scalequest.engines.chat import ChatFormatter
        from scalequest.serve.clients import (
            DeploymentDifficultyScorer,
            DeploymentEngine,
            DeploymentRewardScorer,
        )
        from scalequest.serve.questions import QuestionService

        self.cfg = SynthesisConfig.model_validate(cfg)
        self.limits = self.cfg.serve.limits
        self.llms, self.scorer = llms, scorer
        self.token = os.environ.get(self.cfg.serve.auth_token_env) or None
        self.formatters = {k: ChatFormatter(self.cfg.models[k].path, self.cfg.models[k].trust_remote_code)
                           for k in llms}
        engines = {k: DeploymentEngine(h, self.cfg.models[k].path) for k, h in llms.items()}
        self.reward_scorer = DeploymentRewardScorer(scorer) if self.cfg.reward.kind != "agreement" else None
        difficulty = DeploymentDifficultyScorer(scorer) if self.cfg.difficulty.model_path else None
        self.service = QuestionService(self.cfg, engines, self.formatters, self.reward_scorer, difficulty,
                                       max_candidates=self.limits.max_candidates)
        # stages block on deployment calls: they run here, off the event loop
        self.pool = ThreadPoolExecutor(max_workers=self.cfg.serve.ingress.max_ongoing_requests)
        self.started = int(time.time())
        log.info("ingress up: models %s, auth %s", sorted(llms), "on" if self.token else "off")

    def __serve_build_asgi_app__(self):
        from scalequest.serve.routes import build_api

        return build_api(self)

    # ---- the work behind each route (routes.py does HTTP) ----

    async def questions(self, req: QuestionsRequest) -> dict:
        plan = self._plan(req)
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.pool, self.service.run, plan),
                                          self.cfg.serve.request_timeout_s)
        except TimeoutError:
            raise APIError(504, f"request took over {self.cfg.serve.request_timeout_s} s "
                           "(serve.request_timeout_s); ask for fewer questions", kind="timeout") from None

    def _plan(self, req: QuestionsRequest):
        from scalequest.serve.questions import QuestionPlan

        check_limit(req.n, self.limits.max_questions, "n", "max_questions")
        names = [g.name for g in self.cfg.generators]
        if req.generator != "mix" and req.generator not in names:
            raise APIError(400, f"generator: unknown generator '{req.generator}'; use one of {names} or "
                           "'mix'", "generator")
        f, d = req.filters, req.filters.difficulty
        lo, hi = (d.min, d.max) if d else (None, None)
        if (lo is not None or hi is not None) and not self.cfg.difficulty.model_path:
            raise APIError(400, "filters.difficulty: this server has no difficulty model "
                           "(difficulty.model_path); drop the difficulty filter", "filters.difficulty")
        if lo is not None and hi is not None and lo > hi:
            raise APIError(400, f"filters.difficulty: min {lo} is above max {hi}", "filters.difficulty")
        if req.num_responses is not None:
            if not req.with_solution:
                raise APIError(400, "num_responses: only used with with_solution: true; send both, or drop "
                               "num_responses", "num_responses")
            check_limit(req.num_responses, self.limits.max_responses, "num_responses", "max_responses")
        extra = {} if req.seed is None else {"seed": req.seed}
        return QuestionPlan(
            n=req.n, generators=names if req.generator == "mix" else [req.generator],
            language=self.cfg.language.enabled if f.language is None else f.language, dedup=f.dedup,
            solvability=self.cfg.solvability.enabled if f.solvability is None else f.solvability,
            difficulty_min=lo, difficulty_max=hi, with_solution=req.with_solution,
            num_responses=req.num_responses, **extra)

    async def score(self, req: ScoreRequest) -> dict:
        from scalequest.mathcheck import extract_boxed
        from scalequest.stages.reward import ScoreResponses

        check_limit(len(req.responses), self.limits.max_responses, "responses", "max_responses")
        for i, text in enumerate([req.question, *req.responses]):
            check_text(text, self.limits.max_text_chars, "question" if i == 0 else f"responses[{i - 1}]")
        answers = [extract_boxed(r) for r in req.responses]
        stage = ScoreResponses(self.cfg.reward, len(req.responses), scorer=self.reward_scorer)
        batch = {"question": [req.question], "responses": [req.responses], "response_answers": [answers]}
        out = await asyncio.get_running_loop().run_in_executor(self.pool, stage, batch)
        agreement = [None if a is None else s for a, s in zip(answers, out["response_agreement"][0] or [])]
        return dict(rewards=out["response_rewards"][0], agreement=agreement or [None] * len(answers),
                    final_answers=answers, reward_model=self.cfg.reward.model_path or "answer-agreement")

    async def health(self) -> dict:
        """Each deployment's state: "ok" when it answers `health()` within serve.health_timeout_s, else
        "unavailable" (its engine died, or its replica is being replaced or has not started)."""
        handles = {f"llm-{k}": h for k, h in self.llms.items()} | {"scorer": self.scorer}

        async def one(handle) -> str:
            try:
                return await asyncio.wait_for(handle.health.remote(), self.cfg.serve.health_timeout_s)
            except Exception as exc:  # noqa: BLE001 - any failure means "not serving now"
                log.warning("health: %s", type(exc).__name__)
                return "unavailable"

        states = dict(zip(handles, await asyncio.gather(*(one(h) for h in handles.values()))))
        return {"status": "ok" if all(s == "ok" for s in states.values()) else "degraded",
                "deployments": states}

    def models(self) -> dict:
        data = [dict(id=k, object="model", created=self.started, owned_by="scalequest",
                     root=self.cfg.models[k].path) for k in self.llms]
        return dict(object="list", data=data)

    async def complete(self, req: CompletionRequest | ChatRequest, chat: bool) -> dict:
        from scalequest.engines.base import Sampling

        if req.model not in self.llms:
            raise APIError(404, f"model: unknown model '{req.model}'; GET /v1/models lists "
                           f"{sorted(self.llms)}", "model", kind="model_not_found")
        max_tokens = (getattr(req, "max_completion_tokens", None) or req.max_tokens) or (512 if chat else 16)
        check_limit(max_tokens, self.limits.max_tokens, "max_tokens", "max_tokens")
        check_limit(req.n, self.limits.max_choices, "n", "max_choices")
        prompts = [self._chat_prompt(req)] if chat else self._prompts(req)
        usage = sum(self._check_prompt(req.model, p, max_tokens, i) for i, p in enumerate(prompts))
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        sampling = Sampling(req.temperature, req.top_p, max_tokens, tuple(stop), req.n)
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return self._stream(req.model, prompts, sampling, req.seed, usage if include_usage else None, chat)
        seeds = None if req.seed is None else [req.seed] * len(prompts)
        outs = await self.llms[req.model].generate.remote(prompts, sampling, seeds)
        return _openai_body(req.model, outs, usage, chat)

    def _stream(self, model: str, prompts: list[str], sampling, seed, prompt_tokens: int | None, chat: bool):
        """Server-sent events in OpenAI's chunk format as vLLM decodes: one chunk per choice step (prompt i's
        choice j is choice i·n + j; a chat choice's first chunk carries the role), an error event if the engine
        fails midway, a usage chunk when asked (stream_options.include_usage), then `data: [DONE]`."""
        from starlette.responses import StreamingResponse

        head = dict(id=f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
                    object="chat.completion.chunk" if chat else "text_completion", created=int(time.time()),
                    model=model)
        handle = self.llms[model].options(stream=True)

        async def events():
            tokens, started = 0, set()
            try:
                for p, prompt in enumerate(prompts):
                    async for index, text, finish, new_tokens in handle.stream.remote(prompt, sampling, seed):
                        i, tokens = p * sampling.n + index, tokens + new_tokens
                        if chat:
                            delta = {"content": text} if i in started else {"role": "assistant", "content": text}
                            started.add(i)
                            choice = dict(index=i, delta=delta, finish_reason=finish, logprobs=None)
                        else:
                            choice = dict(index=i, text=text, finish_reason=finish, logprobs=None)
                        yield _event({**head, "choices": [choice]})
            except Exception as exc:  # noqa: BLE001 - the status line is sent: the error goes in the stream
                from scalequest.serve.routes import is_unavailable

                down = is_unavailable(exc)
                log.error("streamed generation failed: %s: %s", type(exc).__name__, exc)
                yield _event(APIError(503 if down else 500, "the model's engine is unavailable; retry" if down
                                      else "generation failed", kind="server_error").body())
                return
            if prompt_tokens is not None:
                yield _event({**head, "choices": [], "usage": dict(
                    prompt_tokens=prompt_tokens, completion_tokens=tokens, total_tokens=prompt_tokens + tokens)})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    def _prompts(self, req: CompletionRequest) -> list[str]:
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts:
            raise APIError(400, "prompt: empty list; send a string or a list of strings", "prompt")
        check_limit(len(prompts), self.limits.max_choices, "prompt", "max_choices")
        return prompts

    def _chat_prompt(self, req: ChatRequest) -> str:
        tok = self.formatters[req.model].tokenizer
        if not getattr(tok, "chat_template", None):
            raise APIError(400, f"model '{req.model}' has no chat template; use /v1/completions", "model")
        for i, m in enumerate(req.messages):
            check_text(m.content, self.limits.max_text_chars, f"messages[{i}].content")
        msgs = [m.model_dump(include={"role", "content"}) for m in req.messages]
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    def _check_prompt(self, model: str, prompt: str, max_tokens: int, index: int) -> int:
        check_text(prompt, self.limits.max_text_chars, f"prompt[{index}]")
        n = len(self.formatters[model].tokenizer(prompt, add_special_tokens=False)["input_ids"])
        room = self.cfg.models[model].max_model_len - max_tokens
        limit = min(self.limits.max_prompt_tokens, room)
        if n > limit:
            raise APIError(400, f"prompt: {n} tokens is above the limit {limit} "
                           f"(serve.limits.max_prompt_tokens, and max_model_len "
                           f"{self.cfg.models[model].max_model_len} minus max_tokens {max_tokens}); "
                           "shorten it",
                           "prompt")
        if n == 0 and not prompt:
            raise APIError(400, "prompt: empty; send some text", "prompt")
        return n

    def authorized(self, header: str | None) -> bool:
        if self.token is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


def _event(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _openai_body(model: str, outs: list, prompt_tokens: int, chat: bool) -> dict:
    choices, completion_tokens = [], 0
    for gens in outs:
        for g in gens:
            if g.finish_reason == "error":
                raise APIError(500, "generation failed", kind="server_error", detail=g.error)
            completion_tokens += g.num_tokens
            index = len(choices)
            if chat:
                choices.append(dict(index=index, message={"role": "assistant", "content": g.text},
                                    finish_reason=g.finish_reason, logprobs=None))
            else:
                choices.append(dict(index=index, text=g.text, finish_reason=g.finish_reason, logprobs=None))
    usage = dict(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                 total_tokens=prompt_tokens + completion_tokens)
    return dict(id=f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
                object="chat.completion" if chat else "text_completion", created=int(time.time()),
                model=model, choices=choices, usage=usage)

