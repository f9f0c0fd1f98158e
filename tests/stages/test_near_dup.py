"""Near-duplicate removal on literal batches (Ray-free): the first copy is kept, a later near-copy (in the same
batch or an earlier one) is rejected naming the id it copies; distinct questions pass; signatures are the same
in every process, so a resumed run's refilled index rejects the copies of questions kept before the stop."""

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.stages.base import reason_kind
from scalequest.stages.near_dup import DropNearDuplicates, local_index, signatures

Q = ("Tom has 12 red marbles and 18 blue marbles. He gives away one third of all his marbles to his sister and "
     "then buys 7 more green marbles. How many marbles does Tom have now?")
NEAR = [Q.replace("12 red", "13 red"), Q.replace("Tom", "Tim"), Q + " Explain.", Q.replace("then buys", "buys")]
DISTINCT = [
    "Let $f(x) = 3x^2 - 7x + 11$. What is the smallest value of $f(x)$ over all real numbers $x$?",
    "How many positive divisors does 7,560 have?",
    "Sara has 12 red pens and 18 blue pens. She keeps half and gives the rest to 3 friends equally. How many "
    "pens does each friend get?",
]


@pytest.fixture
def cfg():
    return load_config("tiny").near_dup


def _rejects(out):
    return list(zip(out["reject_stage"], out["reject_reason"]))


def test_near_copies_in_the_same_batch_are_rejected_naming_the_first(cfg):
    out = DropNearDuplicates(cfg)({"id": [10, 11, 12, 13, 14], "question": [Q, *NEAR]})
    assert out["reject_reason"][0] is None
    for stage, reason in _rejects(out)[1:]:
        assert stage == "near_dup" and reason.startswith("near-duplicate of id 10 (Jaccard ~")
        assert float(reason.split("~")[1].rstrip(")")) >= cfg.threshold
    assert {reason_kind(r) for r in out["reject_reason"][1:]} == {"near-duplicate of id"}


def test_near_copy_in_a_later_batch_names_the_earlier_id_and_distinct_questions_pass(cfg):
    stage = DropNearDuplicates(cfg)
    first = stage({"id": [3, 4, 5, 6], "question": [*DISTINCT, Q]})
    assert first["reject_reason"] == [None] * 4
    later = stage({"id": [40, 41], "question": [NEAR[0], "What is the sum of the first 50 odd numbers?"]})
    assert later["reject_reason"][0].startswith("near-duplicate of id 6 ")
    assert later["reject_reason"][1] is None


def test_earlier_rejects_are_not_indexed_and_disabled_stage_passes_all(cfg):
    stage = DropNearDuplicates(cfg)
    out = stage({"id": [1, 2], "question": [Q, NEAR[0]], "reject_stage": ["language", None],
                 "reject_reason": ["language 'fr'", None]})
    assert out["reject_reason"] == ["language 'fr'", None]  # the rejected first copy blocks nothing
    off = DropNearDuplicates(cfg.model_copy(update={"enabled": False}))
    assert off({"id": [1, 2], "question": [Q, Q]})["reject_reason"] == [None, None]


def test_threshold_decides(cfg):
    strict = cfg.model_copy(update={"threshold": 0.99})
    assert DropNearDuplicates(strict)({"id": [1, 2], "question": [Q, NEAR[2]]})["reject_reason"][1] is None


def test_signatures_are_the_same_in_another_process(cfg):
    code = ("import json, sys; from scalequest.config import load_config; from scalequest.stages.near_dup import "
            "signatures; print(json.dumps(signatures(json.loads(sys.argv[1]), load_config('tiny').near_dup)"
            ".tolist()))")
    texts = [Q, *DISTINCT]
    other = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert json.loads(other.stdout) == signatures(texts, cfg).tolist()


def test_refilled_index_blocks_copies_of_questions_on_disk(cfg, tmp_path):
    from scalequest.pipeline.run import refill

    shard = tmp_path / "part-0.parquet"
    pq.write_table(pa.table({"id": [0, 1, 2], "question": [Q, DISTINCT[0], DISTINCT[1]],
                             "question_hash": ["a", "b", "c"],
                             "reject_stage": [None, "near_dup", "solvability"]}), shard)
    index = local_index(cfg)
    refill({"near_dup": index}, [shard], load_config("tiny"))
    assert index.size() == 2  # id 1 was itself a near-dup reject: not in the index
    out = DropNearDuplicates(cfg, index)({"id": [7, 8], "question": [NEAR[1], DISTINCT[0]]})
    assert out["reject_reason"][0].startswith("near-duplicate of id 0 ")
    assert out["reject_reason"][1] is None


@pytest.mark.parametrize("override, message", [
    ("near_dup.bands=12", r"bands 12 does not divide num_perm 128"),
    ("near_dup.store_actors=20", r"store_actors 20 is more than bands 16"),
])
def test_bad_band_settings_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", [override])
