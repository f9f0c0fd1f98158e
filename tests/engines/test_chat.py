"""ChatFormatter under the threaded stage actors (calls_per_actor > 1)."""

import subprocess
import sys

SCRIPT = """
import sys
from concurrent.futures import ThreadPoolExecutor
from scalequest.engines.chat import ChatFormatter

f = ChatFormatter(sys.argv[1])
with ThreadPoolExecutor(8) as pool:  # first use from 8 threads at once, transformers not imported yet
    prompts = list(pool.map(lambda i: f.user_prompt(f"q{i}"), range(8)))
assert len({id(f.tokenizer)}) == 1 and all(f"q{i}" in p for i, p in enumerate(prompts)), prompts
print("ok")
"""


def test_first_use_from_many_threads_loads_one_tokenizer_and_formats_every_prompt(tiny_model):
    # a fresh interpreter: the race was in transformers' lazy import, which this test process has already done
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_model)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
