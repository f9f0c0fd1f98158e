"""QuestionService without Ray: the /v1/questions logic over the in-process tiny engine (the same stage
objects the pipeline runs), so its rounds, budget, accounting and seeding are checked without Serve."""

import json
import string

import pytest

from scalequest.config import load_config
from scalequest.engines.chat import ChatFormatter
from scalequest.serve.questions import QuestionPlan, QuestionService


@pytest.fixture(scope="module")
def service(tiny_model, tiny_llm, tiny_engine):
    stops = list(string.ascii_letters) + ["\ufffd"]  # a random model only ends a "question" on these
    cfg = load_config("tiny", [*tiny_llm, "generators.0.hint=\"\"", "question_type.enabled=false",
                               f"generators.0.sampling.stop={json.dumps(stops)}",
                               "generators.0.sampling.max_tokens=16"])
    return QuestionService(cfg, {"smollm2": tiny_engine}, {"smollm2": ChatFormatter(str(tiny_model))},
                           max_candidates=6)


def _plan(**kw):
    base = dict(n=2, generators=["smollm2-qgen"], language=False, dedup=True, solvability=False, seed=4)
    return QuestionPlan(**{**base, **kw})


def test_questions_are_reproducible_and_accounted_for(service):
    out = service.run(_plan())
    assert out["num_candidates"] == out["num_passed"] + sum(out["rejected"].values())
    assert 2 <= out["num_candidates"] <= 6 and len(out["questions"]) == min(2, out["num_passed"])
    for q in out["questions"]:
        assert q["question"] and q["generator"] == "smollm2-qgen" and "solution" not in q
        assert json.loads(q["sampling"])["max_tokens"] == 16
    assert service.run(_plan()) == out


def test_a_filter_that_rejects_everything_spends_the_budget_and_returns_none(service):
    out = service.run(_plan(language=True))  # random bytes are never English
    assert out["questions"] == [] and out["num_candidates"] == 6
    assert any(k.startswith(("language:", "generate:")) for k in out["rejected"])


def test_the_service_runs_the_batch_stage_plan_and_a_scorer_it_loads_itself(tiny_model, tiny_llm, tiny_engine,
                                                                            tiny_scorer_model):
    from scalequest.pipeline.plan import stage_plan

    stops = list(string.ascii_letters) + ["\ufffd"]
    cfg = load_config("tiny", [*tiny_llm, "generators.0.hint=\"\"", "question_type.enabled=false", "solvability.enabled=false",
                               f"generators.0.sampling.stop={json.dumps(stops)}", "generators.0.sampling.max_tokens=16",
                               f"difficulty.model_path={tiny_scorer_model}"])
    service = QuestionService(cfg, {"smollm2": tiny_engine}, {"smollm2": ChatFormatter(str(tiny_model))},
                              max_candidates=4)
    # the filters a request may switch on are built even where the batch run has them off
    assert service.plan == [s.name for s in stage_plan(cfg.model_copy(
        update={"solvability": cfg.solvability.model_copy(update={"enabled": True})}))]
    assert "difficulty" in service.plan
    out = service.run(_plan(n=4))
    scores = [q["scores"]["difficulty"] for q in out["questions"]]
    assert scores and all(isinstance(s, float) for s in scores)
    hard = service.run(_plan(n=4, difficulty_min=max(scores) + 1.0))
    assert hard["questions"] == [] and any(k.startswith("difficulty:") for k in hard["rejected"])


def test_a_request_chooses_how_many_responses_the_solution_is_picked_from(service):
    """A random model seldom writes an answer, so the solution is rarely reached: the check is on the stages a
    request with num_responses runs (built once per N) and on what they make."""
    default = service.cfg.responses.n
    for n in (3, None, 1):
        service.run(_plan(n=1, with_solution=True, num_responses=n))
    assert sorted(service.by_n) == sorted({1, 3, default})
    for n in (1, 3, default):
        responses, reward = service.by_n[n]
        out = responses({"id": [0, 1], "question": ["What is 2+2?", "What is 3+5?"], "seed": [1, 2]})
        for kept, reason in zip(out["responses"], out["reject_reason"]):  # answer-less responses are dropped
            assert len(kept) == n if reason is None else reason.endswith(f"(of {n})"), (kept, reason)
        assert reward.num_samples == n
