import json

import numpy as np
import pytest

from scalequest.config import RewardConfig
from scalequest.engines.scorers import SequenceScorer
from scalequest.stages.reward import ScoreResponses
from scalequest.stages.select import SelectBest


def _batch():
    return {
        "question": ["What is 1/2 + 1/2?", "Q2"],
        "responses": [["... \\boxed{1}", "... \\boxed{\\frac{2}{2}}", "... \\boxed{2}"], []],
        "response_answers": [["1", "\\frac{2}{2}", "2"], []],
        "reject_stage": [None, "responses"],
        "reject_reason": [None, "no response with a \\boxed{} answer (of 4)"],
    }


def test_agreement_counts_equivalent_answers_over_all_samples_and_selects_majority():
    scored = ScoreResponses(RewardConfig(), num_samples=4)(_batch())
    # 1 and 2/2 agree: 2 of the 4 drawn samples (one had no answer)
    assert scored["response_agreement"][0] == [0.5, 0.5, 0.25]
    assert scored["response_rewards"] == [None, None]
    best = SelectBest()(scored)
    assert best["final_answer"] == ["1", None] and best["agreement"][0] == 0.5
    assert best["reject_reason"][1].startswith("no response")


def test_reward_model_scores_every_response_and_selection_follows_it(tiny_scorer_model):
    scorer = SequenceScorer(str(tiny_scorer_model), batch_size=2)
    scored = ScoreResponses(RewardConfig(kind="sequence_classification", model_path=str(tiny_scorer_model)),
                            num_samples=3, scorer=scorer)(_batch())
    rewards = scored["response_rewards"][0]
    assert len(rewards) == 3 and all(isinstance(r, float) for r in rewards)
    best = SelectBest()(scored)
    j = int(np.argmax(rewards))
    assert best["response"][0] == _batch()["responses"][0][j] and best["reward"][0] == rewards[j]


def test_select_treats_nan_list_cells_as_missing():
    # Ray turns an all-null column (no reward model) into a float NaN array
    b = ScoreResponses(RewardConfig(), num_samples=3)(_batch())
    b["response_rewards"] = np.array([np.nan, np.nan])
    out = SelectBest()(b)
    assert out["final_answer"][0] == "1" and out["reward"][0] is None


def test_select_accepts_numpy_list_columns():
    b = ScoreResponses(RewardConfig(), num_samples=3)(_batch())
    numpy_batch = {k: np.array([np.array(v, dtype=object) if isinstance(v, list) else v for v in col] + [None],
                               dtype=object)[:-1] for k, col in b.items()}
    out = SelectBest()(numpy_batch)
    assert out["final_answer"][0] == "1"


def test_selection_on_published_scalequest_samples(shared_data):
    rows = [json.loads(line) for line in (shared_data / "scalequest_samples" / "samples.jsonl").open()][:20]
    from scalequest.mathcheck import extract_boxed

    batch = {"question": [r["query"] for r in rows], "responses": [[r["response"]] * 2 for r in rows],
             "response_answers": [[extract_boxed(r["response"])] * 2 for r in rows]}
    kept = [i for i, a in enumerate(batch["response_answers"]) if a[0] is not None]
    batch = {k: [v[i] for i in kept] for k, v in batch.items()}
    out = SelectBest()(ScoreResponses(RewardConfig(), num_samples=2)(batch))
    assert out["agreement"] == [1.0] * len(kept)
    assert out["response"] == [rows[i]["response"] for i in kept]


def test_reward_kind_needs_model_path():
    with pytest.raises(ValueError, match="needs model_path"):
        RewardConfig(kind="sequence_classification")


def test_select_thresholds_reject_weak_agreement_and_low_reward_with_their_reasons():
    from scalequest.config import SelectConfig

    scored = ScoreResponses(RewardConfig(), num_samples=4)(_batch())  # best agreement 0.5
    assert SelectBest(SelectConfig(min_agreement=0.5))(scored)["reject_reason"][0] is None
    out = SelectBest(SelectConfig(min_agreement=0.75))(scored)
    assert out["reject_stage"][0] == "select"
    assert out["reject_reason"][0] == "answer agreement 0.50 below select.min_agreement 0.75"
    assert out["final_answer"][0] == "1"  # the selection is still recorded on the rejected row
    rewarded = {**scored, "response_rewards": [[0.2, 0.1, 0.05], None]}
    assert SelectBest(SelectConfig(min_reward=0.2))(rewarded)["reject_reason"][0] is None
    low = SelectBest(SelectConfig(min_reward=0.3))(rewarded)
    assert low["reject_reason"][0] == "reward 0.200 below select.min_reward 0.3"
