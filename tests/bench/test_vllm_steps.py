"""bench/vllm_steps.py traces vLLM's engine-core steps and worker calls by wrapping two vLLM internals in every
process it starts. A vLLM upgrade that renamed them would leave end_to_end.py's step figures empty: this runs a real
engine with tracing on and reads the figures back."""

from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_step_trace_reads_a_real_engine(tiny_model, tiny_engine_cfg, tmp_path, monkeypatch):
    from scalequest.engines.base import Sampling
    from scalequest.engines.vllm_engine import VLLMEngine

    monkeypatch.syspath_prepend(str(BENCH))
    import vllm_steps

    for var in ("PYTHONPATH", "SQ_VLLM_TRACE_DIR"):  # restored after the test: later processes do not trace
        monkeypatch.setenv(var, "")
    vllm_steps.tracing(tmp_path)
    engine = VLLMEngine(tiny_engine_cfg(tiny_model, max_num_seqs=8))
    try:
        out = engine.generate(["1 2 3", "a b", "x", "7 8 9 10"], Sampling(top_p=0.9, max_tokens=12), seeds=[1, 2, 3, 4])
    finally:
        engine.close()
    tokens = sum(g.num_tokens for gens in out for g in gens)
    s = vllm_steps.summarize(tmp_path)
    assert s, f"no trace written in {sorted(p.name for p in tmp_path.iterdir())}"
    assert s["prefill_steps"] >= 1 and s["decode_steps"] >= 1
    assert s["steps"] == s["prefill_steps"] + s["decode_steps"] <= tokens
    assert 1 <= s["decode_mean_batch"] <= 4  # four prompts, one sequence each
    assert s["forward_cpu_s"] > 0 and s["sampling_ms_per_row"] > 0, s  # both worker calls of a step are traced
    assert 0 < s["worker_on_cpu_share"] <= 1.05 and 0 < s["worker_busy_share"] <= 1.05, s  # only the steps' calls
    assert vllm_steps.summarize(tmp_path, vllm_steps.files(tmp_path)) == {}  # an earlier side's files are skipped
    assert "sampling" in vllm_steps.line("bare", s)
