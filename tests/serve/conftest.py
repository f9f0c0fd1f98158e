"""One Serve application for the module that asks for it: the tiny random Llama as generator, judge and solver
(one LLM deployment), the tiny random regression model as reward and difficulty model, a bearer token, and
small limits so every 4xx case is cheap to reach."""

from __future__ import annotations

import json
import os
import socket
import string

import pytest

TOKEN = "test-token-123"
TOKEN_ENV = "SCALEQUEST_TEST_API_TOKEN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_serve_overrides(tiny_llm, tiny_scorer_model, port: int) -> list[str]:
    stops = list(string.ascii_letters) + ["\ufffd"]  # a random model only ends a "question" on these
    return [
        *tiny_llm, "models.smollm2.max_model_len=512",
        "models.smollm2.max_num_seqs=32",
        "generators.0.hint=\"\"", f"generators.0.sampling.stop={json.dumps(stops)}",
        "generators.0.sampling.max_tokens=16", "solvability.sampling.max_tokens=8",
        "question_type.enabled=false",  # a random model's "questions" are fragments
        "responses.n=2", "responses.sampling.max_tokens=8", "responses.force_answer=false",
        "reward.kind=sequence_classification", f"reward.model_path={tiny_scorer_model}",
        f"difficulty.model_path={tiny_scorer_model}", "ray.num_cpus=8",
        "ray.env_vars.VLLM_CPU_KVCACHE_SPACE=\"1\"",
        f"serve.port={port}", f"serve.auth_token_env={TOKEN_ENV}",
        "serve.limits.max_questions=4", "serve.limits.max_candidates=8", "serve.limits.max_tokens=32",
        "serve.limits.max_choices=4", "serve.limits.max_prompt_tokens=128", "serve.limits.max_responses=4",
        "serve.limits.max_text_chars=2000", "serve.limits.max_body_bytes=4096",
    ]


@pytest.fixture(scope="module")
def served(tiny_llm, tiny_scorer_model):
    """(base URL, config) of a running Serve app; torn down (Serve and Ray) after the module."""
    import ray
    from ray import serve

    from scalequest.config import load_config
    from scalequest.serve.app import run_serve

    if ray.is_initialized():
        pytest.fail("a Ray is already running in this process; the Serve tests start their own")
    port = free_port()
    cfg = load_config("tiny", tiny_serve_overrides(tiny_llm, tiny_scorer_model, port))
    os.environ[TOKEN_ENV] = TOKEN  # before Ray starts: local workers inherit the driver's environment
    try:
        run_serve(cfg, blocking=False)
        yield f"http://127.0.0.1:{port}", cfg
    finally:
        os.environ.pop(TOKEN_ENV, None)
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()


@pytest.fixture
def loopback_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def api_token() -> str:
    return TOKEN


@pytest.fixture(scope="session")
def serve_overrides(tiny_llm, tiny_scorer_model):
    """`port -> overrides` of the tiny config for a Serve app on the tiny random models (and TOKEN_ENV)."""
    return lambda port: tiny_serve_overrides(tiny_llm, tiny_scorer_model, port), TOKEN_ENV


@pytest.fixture(scope="module")
def http(served):
    import httpx

    url, _ = served
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def oai(served):
    import openai

    url, _ = served
    return openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0, timeout=120)
