"""Request and response bodies of the HTTP API, and the checks against `serve.limits` (→ `APIError`, a 4xx
with a message that names the field, the value, the limit and the config key that sets it).

The OpenAI-compatible bodies accept and ignore fields they do not use, so standard clients work unchanged; the
ScaleQuest bodies forbid unknown fields, so a typo is a 400 naming it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SEED_MAX = 2**31 - 1


class APIError(Exception):
    """An HTTP error answered as OpenAI's error body: {"error": {"message", "type", "param", "code"}}.

    `message` goes to the client; `detail` (exception text, paths) only to the server log with the request id.
    """

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error", detail: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.detail = status, message, param, kind, detail

    def body(self) -> dict:
        err = {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}
        return {"error": err}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- POST /v1/questions ----

class DifficultyRange(_Strict):
    min: float | None = Field(None, description="Drop questions scored easier than this.")
    max: float | None = Field(None, description="Drop questions scored harder than this.")


class QuestionFilters(_Strict):
    language: bool | None = Field(None, description="English filter; default: the config's language.enabled.")
    dedup: bool = Field(True, description="Drop repeats within this request.")
    solvability: bool | None = Field(None, description="Solvability judge; default: solvability.enabled.")
    difficulty: DifficultyRange | None = Field(
        None, description="Keep scores in [min, max] (needs a difficulty model: difficulty.model_path).")


class QuestionsRequest(_Strict):
    n: int = Field(1, ge=1, description="Questions wanted (at most serve.limits.max_questions).")
    generator: str = Field("mix", description="A generator name, or 'mix' for all by share.")
    filters: QuestionFilters = Field(default_factory=QuestionFilters, description="Filters to apply.")
    with_solution: bool = Field(False, description="Add the best of N solver responses (reward model).")
    num_responses: int | None = Field(None, ge=1, description="N for with_solution: solver responses per question "
                                      "(default: the config's responses.n; at most serve.limits.max_responses).")
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="Same seed and request → same candidates.")


class Solution(BaseModel):
    response: str | None
    final_answer: str | None
    reward: float | None
    agreement: float | None
    num_responses: int = Field(description="Solver responses the best one was chosen from.")


class QuestionItem(BaseModel):
    id: int = Field(description="Candidate index within this request.")
    question: str
    generator: str
    generator_model: str
    seed: int = Field(description="The sampling seed of this candidate.")
    sampling: str = Field(description="Generator sampling settings and prefix (JSON).")
    scores: dict[str, float | str | bool | None] = Field(description="language, language_score, solvable, "
                                                         "difficulty (null when not computed).")
    solution: Solution | None = None


class QuestionsResponse(BaseModel):
    questions: list[QuestionItem]
    num_candidates: int = Field(description="Candidates drawn for this request.")
    num_passed: int = Field(description="Candidates that passed every filter (may exceed n: last round).")
    seed: int
    rejected: dict[str, int] = Field(description="Rejected candidates by 'stage: reason'.")


# ---- POST /v1/score ----

class ScoreRequest(_Strict):
    question: str = Field(min_length=1)
    responses: list[str] = Field(min_length=1, description="Responses to score (serve.limits.max_responses).")


class ScoreResponse(BaseModel):
    rewards: list[float] | None = Field(description="Reward model scores (null for reward.kind 'agreement').")
    agreement: list[float | None] = Field(
        description="Share of responses whose \\boxed{} answer agrees (null = no answer).")
    final_answers: list[str | None]
    reward_model: str


# ---- OpenAI-compatible ----

class StreamOptions(_Lenient):
    include_usage: bool = Field(False, description="A last chunk with `usage` and no choices.")


class _Sampling(_Lenient):
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    stream: bool = Field(False, description="Server-sent events as vLLM decodes (OpenAI's chunk format, then "
                         "`data: [DONE]`).")
    stream_options: StreamOptions | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


def check_limit(value: int, limit: int, param: str, key: str) -> None:
    if value > limit:
        raise APIError(400, f"{param}: {value} is above the limit {limit} (serve.limits.{key}); ask for "
                       "fewer", param)


def check_text(text: str, limit: int, param: str) -> None:
    if len(text) > limit:
        raise APIError(400, f"{param}: {len(text)} characters is above the limit {limit} "
                       "(serve.limits.max_text_chars)", param)
