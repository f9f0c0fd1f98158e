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


FRAMED = """
import pickle, sys
from scalequest.engines.chat import ChatFormatter

f = pickle.loads(sys.stdin.buffer.read())  # a framed formatter, as a stage actor receives it
print(f.user_prompt(sys.argv[1]), end="")
assert "transformers" not in sys.modules, "a framed formatter loaded transformers"
"""


def test_a_learned_frame_formats_as_the_template_does_without_loading_transformers(tiny_model, shared_data):
    import json
    import pickle

    from scalequest.engines.chat import ChatFormatter

    framed, plain = ChatFormatter(str(tiny_model)).learn_frame(), ChatFormatter(str(tiny_model))
    assert framed._frame is not None
    lines = (shared_data / "math" / "test.jsonl").read_text().splitlines()[:200]
    texts = [json.loads(x)["problem"] for x in lines] + ["", " lead and trail \n", "{{ x }} {% raw %}"]
    assert [framed.user_prompt(t) for t in texts] == [plain.user_prompt(t) for t in texts]
    out = subprocess.run([sys.executable, "-c", FRAMED, texts[0]], input=pickle.dumps(framed), capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode() == plain.user_prompt(texts[0])


def test_a_template_that_changes_the_text_keeps_the_tokenizer(tiny_model):
    from scalequest.engines.chat import ChatFormatter

    f = ChatFormatter(str(tiny_model))
    f.tokenizer.chat_template = f.tokenizer.chat_template.replace("message['content']", "message['content'] | trim")
    assert "| trim" in f.tokenizer.chat_template
    f.learn_frame()
    assert f._frame is None
    assert "<|im_start|>user\nspaced<|im_end|>" in f.user_prompt("  spaced  ")
