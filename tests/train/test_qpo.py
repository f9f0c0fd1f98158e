"""QPO: rewrite parsing, per-row mode choice, the pair builder (every drop reason), optimizer clients (a dead and a
scripted OpenAI-compatible endpoint, the local engine), sampling with the generation stage, DPO in-process on a
tiny random model (parameters change, loss logged, the export loads in vLLM) and the preference report."""

import json
import string
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pyarrow.parquet as pq
import pytest
import torch

from scalequest.config import OptimizerLLMConfig, SolvabilityConfig, load_config
from scalequest.engines.base import Generation, Sampling
from scalequest.errors import ConfigError
from scalequest.prompts import REWRITE_MARKER, rewrite_prompt
from scalequest.stages.solvability import JudgeSolvability
from scalequest.train.qpo_data import (
    DROP_REASONS,
    build_pairs,
    read_pairs,
    rewrite_rows,
    sample_questions,
    split_holdout,
    write_qpo_data,
)
from scalequest.train.rewrite import LocalOptimizer, OpenAIOptimizer, Reply, choose_mode, parse_rewrite

STOPS = [*string.ascii_letters, "\ufffd"]  # a random model only ends a "question" on these
Q = "Tom has 3 apples and buys 5 more. How many apples does he have?"


@pytest.mark.parametrize(("text", "expected"), [
    ("Reasoning...\nRewritten problem: What is 2+3?", "What is 2+3?"),
    ("Rewritten problem: first\nmore thoughts\nRewritten problem: second one?", "second one?"),  # last wins
    ("**Rewritten problem:** What is $x$ if $2x=4$?", "What is $x$ if $2x=4$?"),
    ("**Rewritten problem**: \"How many eggs?\"", "How many eggs?"),
    ("### Rewritten Question: `Find n.`", "Find n."),
    ("Rewritten problem: “Find the sum.”\n\nThis adds one step.", "Find the sum."),  # explanation after: ignored
    ("Rewritten problem:\n\nA train leaves at 3 pm.\nWhen does it arrive?\n\nNote: harder.",
     "A train leaves at 3 pm.\nWhen does it arrive?"),  # blank marker line: the next paragraph
    ("Rewritten problem:\n```\nCompute 7!.\n```", "Compute 7!."),
    ("rewritten math problem： Solve $x^2=9$ for $x>0$.", "Solve $x^2=9$ for $x>0$."),  # full-width colon
    ("Rewritten problem: <What is 9*9?>", "What is 9*9?"),
    ("Rewritten problem: x_1 + x_2 = 5, x_1 = 2. Find x_2.", "x_1 + x_2 = 5, x_1 = 2. Find x_2."),
    ("Rewritten problem: <the complete harder problem>", None),  # the template echoed back
    ("Rewritten problem:", ""),
    ("Rewritten problem: **", ""),
    ("Here is a better version: What is 2+3?", None),
    ("", None),
    (None, None),
])
def test_parse_rewrite_takes_the_last_marked_line(text, expected):
    assert parse_rewrite(text) == expected


def test_choose_mode_is_seeded_per_row_and_follows_the_share():
    modes = [choose_mode(7, i, 0.5) for i in range(400)]
    assert modes == [choose_mode(7, i, 0.5) for i in range(400)]
    assert modes != [choose_mode(8, i, 0.5) for i in range(400)]
    assert 150 < modes.count("difficulty") < 250
    assert {choose_mode(7, i, 0.0) for i in range(50)} == {"solvability"}
    assert {choose_mode(7, i, 1.0) for i in range(50)} == {"difficulty"}


def test_rewrite_prompts_hold_the_question_and_the_marker():
    for mode in ("solvability", "difficulty"):
        text = rewrite_prompt(mode, f"  {Q}\n")
        assert Q in text and text.rstrip().splitlines()[-1].startswith(REWRITE_MARKER)
    assert "one number" in rewrite_prompt("solvability", Q) and "more reasoning steps" in rewrite_prompt(
        "difficulty", Q)
    with pytest.raises(ValueError, match="rewrite mode"):
        rewrite_prompt("both", Q)


class ScriptedJudge:
    """A judge engine: 'No' for questions containing UNSOLVABLE, an engine error for JUDGEFAIL, else 'Yes'."""

    model_path = "judge"

    def generate(self, prompts, sampling, seeds=None):
        out = []
        for p in prompts:
            if "JUDGEFAIL" in p:
                out.append([Generation("", 0, "error", "engine died")])
            else:
                out.append([Generation("Verdict: No" if "UNSOLVABLE" in p else "Fine.\nVerdict: Yes", 4, "stop")])
        return out


class PlainFormatter:
    def user_prompt(self, text):
        return text


def _row(i, output=None, error=None, question=Q, truncated=False):
    return {"id": i, "seed": 100 + i, "prompt": "<|user|>", "question": question, "mode": "difficulty",
            "optimizer_output": output, "optimizer_error": error, "optimizer_truncated": truncated}


def test_build_pairs_drops_every_bad_rewrite_with_its_reason():
    rows = [
        _row(0, "Thinking.\nRewritten problem: Tom has 3 apples, buys 5 more and eats 2. How many are left?"),
        _row(1, None, error="cannot reach optimizer endpoint http://127.0.0.1:9/v1"),
        _row(2, "   "),
        _row(3, "Rewritten problem:   "),
        _row(4, "I think the problem is fine as it is."),
        _row(5, f"Rewritten problem: {Q.upper()}  "),  # identical after normalization
        _row(6, "Rewritten problem: UNSOLVABLE: how many apples does Jerry have?"),
        _row(7, "Rewritten problem: JUDGEFAIL how many apples then?"),
        _row(8, "Rewritten problem: Tom has 3 apples and buys 5 more boxes of", truncated=True),  # cut mid-rewrite
        _row(9, "Rewritten problem: Tom has 3 apples and 5 pears. How many fruits?\nThe change adds", truncated=True),
    ]
    judge = JudgeSolvability(SolvabilityConfig(model="judge", force_verdict=False), ScriptedJudge(), PlainFormatter())
    pairs, drops = build_pairs(rows, judge)

    assert drops == {"optimizer call failed": 1, "rewrite empty": 2, "rewrite unparseable": 2,
                     "rewrite identical": 1, "rewrite judged unsolvable": 1, "solvability judge failed": 1}
    assert list(drops) == list(DROP_REASONS)
    assert [p["id"] for p in pairs] == [0, 9]
    assert pairs[0] == {"id": 0, "prompt": "<|user|>", "chosen": "Tom has 3 apples, buys 5 more and eats 2. How "
                        "many are left?", "rejected": Q, "mode": "difficulty"}


def test_build_pairs_without_judge_keeps_unsolvable_rewrites():
    pairs, drops = build_pairs([_row(0, "Rewritten problem: UNSOLVABLE? Find y.")])
    assert len(pairs) == 1 and sum(drops.values()) == 0 and set(drops) == set(DROP_REASONS)


def test_split_holdout_is_exact_and_reproducible():
    pairs = [{"id": i} for i in range(20)]
    a, b = split_holdout(pairs, 0.25, 3), split_holdout(pairs, 0.25, 3)
    assert a == b and sum(p["split"] == "holdout" for p in a) == 5
    assert [p["split"] for p in split_holdout(pairs, 0.25, 4)] != [p["split"] for p in a]
    assert all(p["split"] == "train" for p in split_holdout(pairs, 0.0, 3))


def test_write_qpo_data_round_trips_pairs_and_counts(tmp_path):
    rows = [_row(0, "Rewritten problem: Find 2+2."), _row(1, None, error="HTTP 500")]
    pairs, drops = build_pairs(rows)
    path = write_qpo_data(tmp_path, rows, split_holdout(pairs, 0.0, 0), {"drops": drops})
    assert read_pairs(path, "train") == [{"id": 0, "prompt": "<|user|>", "chosen": "Find 2+2.", "rejected": Q,
                                          "mode": "difficulty", "split": "train"}]
    counts = json.loads((tmp_path / "pairs.drops.json").read_text())
    assert counts["drops"]["optimizer call failed"] == 1 and counts["pairs"] == counts["train"] == 1
    assert pq.read_table(tmp_path / "rewrites.parquet").num_rows == 2
    empty = write_qpo_data(tmp_path / "none", [], [], {"drops": drops})
    assert read_pairs(empty) == []


def _openai_cfg(**kw):
    return OptimizerLLMConfig(kind="openai", model="gpt-4o-mini", max_retries=1, timeout_s=3, concurrency=2, **kw)


def test_dead_openai_endpoint_becomes_recorded_rows_not_an_exception(monkeypatch, caplog):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    monkeypatch.setenv("SQ_TEST_URL", url)
    monkeypatch.delenv("SQ_TEST_KEY", raising=False)
    optimizer = OpenAIOptimizer(_openai_cfg(base_url_env="SQ_TEST_URL", api_key_env="SQ_TEST_KEY"))
    rows = rewrite_rows([{"id": i, "seed": i, "prompt": "p", "question": Q} for i in range(3)], optimizer, 0, 0.5)

    assert len(rows) == 3 and all(r["optimizer_output"] is None for r in rows)
    assert all(url in r["optimizer_error"] and "cannot reach" in r["optimizer_error"] for r in rows)
    assert build_pairs(rows)[1]["optimizer call failed"] == 3
    assert any(url in rec.getMessage() and "3 of 3 calls failed" in rec.getMessage() for rec in caplog.records)


def test_openai_optimizer_needs_a_key_for_the_openai_api(monkeypatch):
    monkeypatch.delenv("SQ_NO_URL", raising=False)
    monkeypatch.delenv("SQ_NO_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$SQ_NO_KEY"):
        OpenAIOptimizer(_openai_cfg(base_url_env="SQ_NO_URL", api_key_env="SQ_NO_KEY"))


@pytest.fixture
def scripted_server():
    """An OpenAI-compatible chat endpoint: 'boom' prompts get HTTP 500, others a marked rewrite."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            if "boom" in body["messages"][0]["content"]:
                self.send_response(500)
                self.end_headers()
                return
            reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop", "message": {
                         "role": "assistant", "content": "Checks pass.\nRewritten problem: What is 2+3?"}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()


def test_openai_optimizer_sends_sampling_and_parses_replies(scripted_server):
    url, seen = scripted_server
    cfg = _openai_cfg(sampling={"temperature": 0.3, "max_tokens": 77})
    replies = OpenAIOptimizer(cfg, base_url=url, api_key="k").complete(["rewrite A", "boom"], [5, 6])

    assert replies[0] == Reply("Checks pass.\nRewritten problem: What is 2+3?", None, False)
    assert replies[1].text is None and "HTTP 500" in replies[1].error and url in replies[1].error
    first = next(body for path, body in seen if body["messages"][0]["content"] == "rewrite A")
    assert seen[0][0] == "/v1/chat/completions"
    assert first["model"] == "gpt-4o-mini" and first["temperature"] == 0.3 and first["seed"] == 5
    assert first["max_completion_tokens"] == 77
    assert sum(body["messages"][0]["content"] == "boom" for _, body in seen) == 2  # retried once


def test_local_optimizer_on_tiny_engine_records_every_row(tiny_engine):
    from scalequest.engines.chat import ChatFormatter

    optimizer = LocalOptimizer(tiny_engine, ChatFormatter(tiny_engine.model_path), Sampling(max_tokens=8))
    rows = rewrite_rows([{"id": i, "seed": i, "prompt": "p", "question": Q} for i in range(4)], optimizer, 1, 0.5)
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert all(isinstance(r["optimizer_output"], str) and r["optimizer_error"] is None for r in rows)
    assert {r["mode"] for r in rows} <= {"solvability", "difficulty"}
    pairs, drops = build_pairs(rows)
    assert len(pairs) + sum(drops.values()) == 4


def test_local_optimizer_forcing_the_marker_gives_every_reply_a_marked_line(tiny_engine):
    from scalequest.engines.chat import ChatFormatter

    plain = LocalOptimizer(tiny_engine, ChatFormatter(tiny_engine.model_path), Sampling(max_tokens=8))
    forced = LocalOptimizer(tiny_engine, ChatFormatter(tiny_engine.model_path), Sampling(max_tokens=8), True)
    prompts, seeds = [rewrite_prompt("difficulty", Q)] * 3, [1, 2, 3]
    before, after = plain.complete(prompts, seeds), forced.complete(prompts, seeds)
    assert all(parse_rewrite(r.text) is None for r in before)  # a random model never writes the marker itself
    for b, a in zip(before, after):
        assert a.error is None and a.text.startswith(b.text.rstrip() + "\n\n" + REWRITE_MARKER)
        assert parse_rewrite(a.text) is not None


def test_sample_questions_uses_the_generation_stage(tiny_engine):
    from scalequest.config import SamplingConfig

    rows = sample_questions(tiny_engine, "<|im_start|>user\n", ["<|im_end|>"], SamplingConfig(max_tokens=6), 5, 0)
    assert [r["id"] for r in rows] == list(range(5)) and len({r["seed"] for r in rows}) == 5
    assert all(r["prompt"] == "<|im_start|>user\n" for r in rows)
    assert all(r["reject_reason"] is not None or r["question"] for r in rows)
    assert rows == sample_questions(tiny_engine, "<|im_start|>user\n", ["<|im_end|>"], SamplingConfig(max_tokens=6),
                                    5, 0)


def _pairs_file(tmp_path, n=8):
    pairs = [{"id": i, "prompt": "<|im_start|>user\n", "chosen": f"Tom has {i} apples and buys {i + 2} more. "
              "How many apples does he have now?", "rejected": f"apples {i}", "mode": "difficulty"}
             for i in range(n)]
    return write_qpo_data(tmp_path / "data", [], split_holdout(pairs, 0.25, 0), {"drops": {}})


@pytest.mark.slow
def test_dpo_loop_trains_and_exports_a_generator_vllm_loads(tiny_model, tiny_engine_cfg, tmp_path):
    from safetensors.torch import load_file

    from scalequest.config import QPOConfig, RayTrainConfig
    from scalequest.engines.vllm_engine import VLLMEngine
    from scalequest.train.qpo import DPOLoop, dpo_loop, dpo_rows

    out = tmp_path / "qpo"
    q = QPOConfig(qft_model=str(tiny_model), optimizer={"model": "smollm2"}, learning_rate=1e-3, max_steps=2,
                  warmup_steps=0, max_length=128, per_device_batch=2, effective_batch=2)
    rows = dpo_rows(read_pairs(_pairs_file(tmp_path), "train"), "<|im_end|>")
    assert all(r["chosen"].endswith("<|im_end|>") and r["rejected"].endswith("<|im_end|>") for r in rows)
    result = dpo_loop(DPOLoop(hparams=q, ray=RayTrainConfig(num_workers=1), base_model=str(tiny_model),
                              output_dir=str(out), rows=rows, in_process=True).model_dump())

    assert result["global_step"] == 2 and len(result["losses"]) == 2
    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    key = "model.layers.1.self_attn.q_proj.weight"
    assert not torch.equal(before[key].float(), after[key].float())
    engine = VLLMEngine(tiny_engine_cfg(out))
    try:
        gens = engine.generate(["<|im_start|>user\n"], Sampling(max_tokens=4))
    finally:
        engine.close()
    assert gens[0][0].finish_reason in ("stop", "length")


def test_preference_accuracy_of_a_model_against_itself(tiny_model, tmp_path):
    from scalequest.train.qpo import preference_accuracy

    pairs = read_pairs(_pairs_file(tmp_path))
    same = [{**pairs[0], "rejected": pairs[0]["chosen"]}]
    assert preference_accuracy(tiny_model, None, same, "<|im_end|>")["prefers_chosen"] == 0.0  # a tie
    report = preference_accuracy(tiny_model, tiny_model, pairs, "<|im_end|>")
    assert report["pairs"] == 8 and 0.0 <= report["prefers_chosen"] <= 1.0
    assert report["implicit_reward_accuracy"] == 0.0 and report["mean_implicit_margin"] == 0.0
    assert report["mean_logp_margin"] < 0  # chosen questions here are much longer than rejected ones


def _qpo_cfg(tmp_path, tiny_model, *extra):
    return load_config("tiny", [
        f"models.smollm2.path={tiny_model}", "models.smollm2.dtype=float32", f"train.qpo.qft_model={tiny_model}", "train.qpo.template=auto",
        "train.qpo.optimizer.model=smollm2", "train.qpo.optimizer.sampling.max_tokens=8", "train.qpo.num_samples=6",
        "train.qpo.sampling.max_tokens=8", f"train.qpo.sampling.stop={json.dumps(STOPS)}",
        "train.qpo.qft_engine={max_model_len: 1024, enforce_eager: true, dtype: float32}", "solvability.sampling.max_tokens=8",
        "train.qpo.max_steps=1", "train.qpo.per_device_batch=2", "train.qpo.effective_batch=2",
        "train.qpo.warmup_steps=0", f"train.qpo.data_dir={tmp_path / 'data'}",
        f"train.qpo.output_dir={tmp_path / 'qpo'}", f"train.ray.storage_path={tmp_path / 'ray'}", *extra])


@pytest.mark.slow
def test_build_qpo_data_on_tiny_model_writes_every_file(tiny_model, tmp_path):
    from scalequest.train.qpo_build import build_qpo_data

    path = build_qpo_data(_qpo_cfg(tmp_path, tiny_model), tmp_path / "run")
    counts = json.loads((tmp_path / "run" / "pairs.drops.json").read_text())
    assert counts["sampled"] == 6 and set(counts["drops"]) == set(DROP_REASONS)
    assert counts["rewritten"] + sum(counts["sample_rejects"].values()) == 6
    assert counts["pairs"] + sum(counts["drops"].values()) == counts["rewritten"]
    assert counts["optimizer"].startswith("local:")
    assert len(read_pairs(path)) == counts["pairs"]


@pytest.mark.slow
@pytest.mark.parametrize("in_process", [True, pytest.param(False, marks=pytest.mark.ray, id="ray-train")])
def test_run_qpo_on_given_pairs_reports_both_rates(tiny_model, tmp_path, in_process, drill):
    """In this process, and on Ray Train (2 CPU workers, the CLI's default) joined through the config's `ray`, with
    a worker killed after the checkpoint of step 1 of 2 and the restarted workers resuming from it."""
    from scalequest.train.qpo import run_qpo

    pairs = _pairs_file(tmp_path)
    # an effective batch of 4: 2 per worker on 2 Ray Train workers, or 2 × 2 accumulation steps in this process
    extra = [] if in_process else [*drill.overrides, "train.qpo.max_steps=2", "train.qpo.save_steps=1"]
    out = run_qpo(_qpo_cfg(tmp_path, tiny_model, f"train.qpo.pairs={pairs}", "train.qpo.effective_batch=4", *extra),
                  in_process=in_process)
    report = json.loads((out / "report.json").read_text())
    assert report["holdout"]["qft"]["pairs"] == 2 and report["train"]["trained"]["pairs"] == 6
    for split in ("holdout", "train"):
        assert 0.0 <= report[split]["qft"]["prefers_chosen"] <= 1.0
        assert 0.0 <= report[split]["trained"]["implicit_reward_accuracy"] <= 1.0
    assert (out / "scalequest-config.yaml").is_file()
    if in_process:
        assert report["training"]["global_step"] == 1 and report["training"]["resumed_from_step"] is None
    else:
        drill.assert_resumed(out)


def test_run_qpo_names_a_missing_qft_model(tmp_path, tiny_model):
    from scalequest.train.qpo import run_qpo

    cfg = _qpo_cfg(tmp_path, tiny_model, f"train.qpo.qft_model={tmp_path / 'models' / 'qft'}")
    with pytest.raises(ConfigError, match="train.qpo.qft_model"):
        run_qpo(cfg, in_process=True)
