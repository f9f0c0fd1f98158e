import numpy as np
import pytest

from scalequest.config import GeneratorConfig
from scalequest.stages.generate_questions import AssignGenerators, row_seed


def _gens(*shares):
    return [GeneratorConfig(name=f"g{i}", model="m", share=s) for i, s in enumerate(shares)]


@pytest.mark.parametrize("shares, n", [((0.4, 0.6), 1000), ((1, 1, 2), 400), ((3,), 10), ((0.4, 0.6), 10)])
def test_assigned_shares_hold_for_any_run_length(shares, n):
    out = AssignGenerators(_gens(*shares), run_seed=0)({"id": np.arange(n)})
    total = sum(shares)
    for i, s in enumerate(shares):
        assert abs(out["generator"].count(f"g{i}") - n * s / total) <= 1.5


def test_assignment_and_seeds_depend_only_on_run_seed_and_id():
    a = AssignGenerators(_gens(0.4, 0.6), run_seed=1)({"id": [5, 6, 7]})
    b = AssignGenerators(_gens(0.4, 0.6), run_seed=1)({"id": np.array([7, 5, 6])})
    assert dict(zip(a["id"], zip(a["generator"], a["seed"]))) == dict(zip(b["id"], zip(b["generator"], b["seed"])))
    assert len(set(a["seed"])) == 3 and row_seed(1, 5) != row_seed(2, 5)
    assert all(0 <= s < 2**31 for s in a["seed"])
