"""Model-backed stages on a real tiny random-weight model: its output is garbage, which is exactly the malformed
model output these stages must turn into rejects with reasons (never crashes)."""

import numpy as np
import pytest

from scalequest.config import GeneratorConfig, ResponsesConfig, SamplingConfig, SolvabilityConfig
from scalequest.engines.chat import ChatFormatter
from scalequest.stages.generate_questions import AssignGenerators, GenerateQuestions
from scalequest.stages.responses import GenerateResponses
from scalequest.stages.solvability import VERDICT_CUE, JudgeSolvability


@pytest.fixture(scope="module")
def fmt(tiny_model):
    return ChatFormatter(str(tiny_model))


def _gen_stage(tiny_engine, fmt, max_tokens):
    gen = GeneratorConfig(name="tiny", model="m", share=1.0,
                          sampling=SamplingConfig(temperature=1.0, top_p=0.99, max_tokens=max_tokens))
    return GenerateQuestions({"tiny": tiny_engine}, {"tiny": fmt.prefix("auto")}, {"tiny": gen.sampling})


def test_generate_questions_is_reproducible_and_rejects_runaway_generations(tiny_engine, fmt):
    rows = AssignGenerators([GeneratorConfig(name="tiny", model="m", share=1.0)], run_seed=7)(
        {"id": np.arange(6)})
    stage = _gen_stage(tiny_engine, fmt, max_tokens=8)
    out = stage(rows)
    assert len(out["question"]) == 6 and all(isinstance(q, str) for q in out["question"])
    assert all(t <= 8 for t in out["question_tokens"])
    for q, reason in zip(out["question"], out["reject_reason"]):
        # a random model rarely emits <|im_end|> within 8 tokens: those rows must say why they were dropped
        assert reason is None or reason in ("no end-of-turn within 8 tokens", "empty question")
    assert "no end-of-turn within 8 tokens" in out["reject_reason"]
    again = stage(rows)
    assert again["question"] == out["question"]  # seeded from (run seed, row id)


def test_generate_questions_assigns_ids_itself_as_the_pipeline_calls_it(tiny_engine, fmt):
    gens = [GeneratorConfig(name="tiny", model="m", share=1.0)]
    assigned = AssignGenerators(gens, run_seed=7)({"id": np.arange(4)})
    gen = GeneratorConfig(name="tiny", model="m", share=1.0, sampling=SamplingConfig(max_tokens=6))
    stage = GenerateQuestions({"tiny": tiny_engine}, {"tiny": fmt.prefix("auto")}, {"tiny": gen.sampling},
                              assign=AssignGenerators(gens, run_seed=7))
    from_ids, from_rows = stage({"id": np.arange(4)}), stage(assigned)
    assert from_ids["seed"] == assigned["seed"] and from_ids["generator"] == ["tiny"] * 4
    assert from_ids["question"] == from_rows["question"]


def test_generate_questions_routes_rows_to_their_generator(tiny_engine, fmt):
    prefix, stops = fmt.prefix("auto")
    stage = GenerateQuestions(
        {"a": tiny_engine, "b": tiny_engine}, {"a": (prefix, stops), "b": ("User: ", ["\n\nAssistant:"])},
        {"a": SamplingConfig(max_tokens=3), "b": SamplingConfig(max_tokens=9)})
    out = stage({"id": [0, 1, 2, 3], "generator": ["a", "b", "a", "b"], "seed": [1, 2, 3, 4]})
    # each row is sampled with its own generator's settings (the random model rarely stops early)
    assert max(out["question_tokens"][0::2]) <= 3 < max(out["question_tokens"][1::2]) <= 9
    assert out["reject_reason"][1] in (None, "no end-of-turn within 9 tokens", "empty question")


def test_generate_questions_leaves_upstream_rejects_alone(tiny_engine, fmt):
    stage = _gen_stage(tiny_engine, fmt, max_tokens=4)
    out = stage({"id": [0, 1], "generator": ["tiny", "tiny"], "seed": [1, 2],
                 "reject_stage": ["x", None], "reject_reason": ["upstream", None]})
    assert out["reject_reason"][0] == "upstream" and out["question"][0] is None


def test_generate_questions_unknown_generator_is_a_contract_error(tiny_engine, fmt):
    with pytest.raises(ValueError, match="no engine for generator"):
        _gen_stage(tiny_engine, fmt, 4)({"id": [0], "generator": ["other"], "seed": [0]})


@pytest.mark.parametrize("force", [False, True])
def test_judge_turns_garbage_verdicts_into_rejects(tiny_engine, fmt, force):
    cfg = SolvabilityConfig(model="m", sampling=SamplingConfig(temperature=0.0, max_tokens=12), force_verdict=force)
    out = JudgeSolvability(cfg, tiny_engine, fmt)(
        {"question": np.array(["What is 2+2?", "Solve x+1=3."], dtype=object), "seed": np.array([1, 2])})
    assert out["reject_stage"] == ["solvability", "solvability"]
    assert all(r.startswith("unparseable verdict") for r in out["reject_reason"])
    assert out["solvable"] == [None, None]
    # with forcing, the verdict cue and what the judge wrote after it are part of the recorded judgement
    assert all((VERDICT_CUE in j) == force for j in out["solvability_judgement"])
    assert all(0 < t <= 12 + 3 * force for t in out["judge_tokens"])


def test_responses_without_boxed_answer_are_dropped_even_after_forcing(tiny_engine, fmt):
    outs = {}
    for force in (False, True):
        cfg = ResponsesConfig(model="m", n=3, sampling=SamplingConfig(temperature=0.7, max_tokens=10),
                              force_answer=force)
        stage = GenerateResponses(cfg, tiny_engine, fmt)
        outs[force] = out = stage({"question": ["What is 2+2?"], "seed": [3]})
        # a random model never closes the forced "\\boxed{" either: the responses are still dropped
        assert out["responses"] == [[]] and out["response_answers"] == [[]]
        assert out["reject_reason"] == ["no response with a \\boxed{} answer (of 3)"]
    assert 0 < outs[False]["response_tokens"][0] <= 30
    # the same seeded responses, plus 1..24 tokens of forced answer for each of the 3
    assert 3 <= outs[True]["response_tokens"][0] - outs[False]["response_tokens"][0] <= 72
    assert "\\boxed{}" in stage.prompt("Q?") and stage.prompt("Q?").startswith("<|im_start|>")
