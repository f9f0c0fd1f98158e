import math

import numpy as np
import pytest

from scalequest.config import DifficultyConfig
from scalequest.stages.difficulty import DropEasiest, ScoreDifficulty, difficulty_threshold


def test_difficulty_scores_with_a_real_regression_model(tiny_scorer_model):
    stage = ScoreDifficulty(DifficultyConfig(model_path=str(tiny_scorer_model), batch_size=2))
    out = stage({"question": np.array(["What is 2+2?", "Prove there are infinitely many primes.", "x"],
                                      dtype=object),
                 "reject_stage": [None, None, "language"], "reject_reason": [None, None, "language 'xx'"]})
    assert all(isinstance(s, float) and math.isfinite(s) for s in out["difficulty"][:2])
    assert out["difficulty"][2] is None  # rejected upstream: not scored
    again = stage({"question": ["What is 2+2?"]})
    assert again["difficulty"][0] == pytest.approx(out["difficulty"][0], rel=1e-3)


@pytest.mark.parametrize("scores, share, expected", [
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], 0.3, 0.4),
    ([0.5, None, float("nan"), 0.1], 0.5, 0.5),
    ([0.3, 0.2], 0.0, None),
    ([], 0.5, None),
])
def test_difficulty_threshold_drops_the_requested_share(scores, share, expected):
    assert difficulty_threshold(scores, share) == expected


def test_drop_easiest_rejects_below_threshold_and_keeps_unscored():
    out = DropEasiest(0.4)({"difficulty": np.array([0.1, 0.4, np.nan, 0.9])})
    assert out["reject_stage"] == ["difficulty", None, None, None]
    assert out["reject_reason"][0] == "too easy (difficulty 0.100 < 0.400)"
    assert DropEasiest(None)({"difficulty": [0.0]})["reject_reason"] == [None]


def test_drop_easiest_above_rejects_questions_harder_than_the_ceiling():
    out = DropEasiest(0.5, above=True)({"difficulty": [0.2, 0.5, 0.9, None],
                                        "reject_stage": [None, None, None, None],
                                        "reject_reason": [None, None, None, None]})
    assert out["reject_stage"] == [None, None, "difficulty", None]
    assert out["reject_reason"][2] == "too hard (difficulty 0.900 > 0.500)"
