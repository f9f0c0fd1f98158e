"""Difficulty calibration (Ray-free: the calibration sample is given as scores): the easiest-share threshold and the
bins' acceptance probabilities per generator, stored and read back on a resume; streaming sampling then meets the
target shares."""

import json
import random

import pytest

from scalequest.config import load_config
from scalequest.pipeline.calibrate import difficulty_calibration
from scalequest.stages.difficulty import SampleDifficulty, bin_acceptance, bin_counts


def test_bin_acceptance_keeps_as_many_rows_as_the_target_allows():
    scores = [0.1] * 60 + [0.5] * 30 + [0.9] * 10  # observed 60/30/10
    accept = bin_acceptance(scores, [0.3, 0.7], [0.2, 0.3, 0.5])
    assert accept[2] == 1.0  # the scarcest bin relative to its target keeps everything
    kept = [c * a for c, a in zip(bin_counts(scores, [0.3, 0.7]), accept)]
    assert [round(k / sum(kept), 6) for k in kept] == [0.2, 0.3, 0.5]
    assert bin_acceptance([0.1] * 5, [0.3, 0.7], [0.2, 0.3, 0.5]) == [1.0, 1.0, 1.0]  # unseen bins: keep all


def test_streaming_sampling_meets_the_target_shares_and_is_the_same_in_every_execution():
    rng = random.Random(0)
    scores = [rng.random() ** 2 for _ in range(20000)]  # skewed easy
    accept = bin_acceptance(scores[:2000], [0.3, 0.7], [0.2, 0.3, 0.5])  # from a calibration sample
    stage = SampleDifficulty({"g": accept}, [0.3, 0.7], ["easy", "medium", "hard"], seed=7)
    batch = {"id": list(range(20000)), "difficulty": scores, "generator": ["g"] * 20000}
    out = stage(batch)
    kept = [s for s, r in zip(scores, out["reject_reason"]) if r is None]
    shares = [c / len(kept) for c in bin_counts(kept, [0.3, 0.7])]
    assert shares == pytest.approx([0.2, 0.3, 0.5], abs=0.03)
    assert out["reject_reason"] == stage(batch)["reject_reason"]  # seeded per (seed, id)
    assert {r.split(" (")[0] for r in out["reject_reason"] if r} <= {"sampled out: easy over its target share",
                                                                    "sampled out: medium over its target share"}


def test_calibration_per_generator_is_stored_and_reused(tmp_path):
    cfg = load_config("tiny", [
        "generators=[{name: a, model: smollm2, share: 1}, {name: b, model: smollm2, share: 1, "
        "difficulty_target_shares: [0, 0.5, 0.5], drop_easiest_share: 0}]",
        "difficulty.model_path=x", "difficulty.drop_easiest_share=0.5", "difficulty.target_shares=[0.2, 0.3, 0.5]"])
    sample = {"a": [i / 100 for i in range(100)], "b": [i / 100 for i in range(100)]}
    calls = []
    path = tmp_path / "difficulty_threshold.json"
    calib = difficulty_calibration(cfg, lambda: calls.append(1) or sample, path)
    assert calib["thresholds"] == {"a": 0.5, "b": None}
    a, b = calib["acceptance"]["a"], calib["acceptance"]["b"]
    # a keeps scores from 0.5: 20 medium, 30 hard (0.4/0.6) against 0.3/0.5 → medium thinned to 0.9; no easy score
    # is left to steer, so that bin keeps all
    assert a == pytest.approx([1.0, 0.9, 1.0])
    assert b[0] == 0.0 and b[2] == 1.0  # b wants no easy questions at all
    assert json.loads(path.read_text())["targets"]["b"] == [0, 0.5, 0.5]
    assert difficulty_calibration(cfg, lambda: calls.append(1) or {}, path) == calib and calls == [1]


def test_no_share_and_no_target_needs_no_calibration(tmp_path):
    cfg = load_config("tiny", ["difficulty.model_path=x"])
    calib = difficulty_calibration(cfg, lambda: pytest.fail("sampled without need"), tmp_path / "t.json")
    assert calib == {"thresholds": {"smollm2-qgen": None}, "acceptance": {"smollm2-qgen": None}}
