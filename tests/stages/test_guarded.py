"""`run_guarded`: a stage that raises on some rows (or on any batch of more than one row) turns exactly those
rows into rejects with 'error: <type>: <message>'; the other rows keep the stage's output; a broken contract
still raises."""

import numpy as np
import pytest

from scalequest.errors import EngineUnavailable, StageInputError
from scalequest.stages.base import Rejects, column, error_reason, require, run_guarded


class Double:
    """Doubles `x`; raises on the ids in `bad`, and on any batch bigger than `max_rows`."""

    def __init__(self, bad=(), max_rows=None):
        self.bad, self.max_rows = set(bad), max_rows

    def __call__(self, batch):
        n = require("Double", batch, ["id", "x"])
        if self.max_rows is not None and n > self.max_rows:
            raise MemoryError("batch too big for this fake model")
        for i in column(batch, "id"):
            if i in self.bad:
                raise ValueError(f"row {i} is bad\n(second line)")
        out = {k: column(batch, k) for k in batch}
        out["doubled"] = [2 * x for x in column(batch, "x")]
        out.update(Rejects(batch, n).columns())
        return out


def test_rows_that_raise_become_error_rejects_and_the_rest_keep_their_output():
    seen = []
    out = run_guarded(Double(bad={3, 5}), {"id": [1, 3, 4, 5], "x": [10, 30, 40, 50]}, "double",
                      lambda i, exc: seen.append(i))
    assert out["id"] == [1, 3, 4, 5] and out["doubled"] == [20, None, 80, None]
    assert out["reject_stage"] == [None, "double", None, "double"]
    assert out["reject_reason"] == [None, "error: ValueError: row 3 is bad (second line)", None,
                                    "error: ValueError: row 5 is bad (second line)"]
    assert seen == [1, 3]


def test_a_batch_that_fails_as_a_whole_is_rerun_row_by_row():
    out = run_guarded(Double(max_rows=1), {"id": np.array([1, 2, 3]), "x": np.array([1, 2, 3])}, "double")
    assert out["doubled"] == [2, 4, 6] and out["reject_reason"] == [None, None, None]


def test_a_passing_batch_is_the_stage_output_unchanged():
    batch = {"id": [1, 2], "x": [1, 2]}
    assert run_guarded(Double(), batch, "double") == Double()(batch)


def test_a_broken_contract_still_raises():
    with pytest.raises(StageInputError, match="missing column"):
        run_guarded(Double(), {"id": [1]}, "double")


def test_an_engine_that_is_gone_fails_the_batch_instead_of_rejecting_its_rows():
    class NoEngine:
        def __call__(self, batch):
            raise EngineUnavailable("models.m: the vLLM engine for m died")

    with pytest.raises(EngineUnavailable, match="models.m"):
        run_guarded(NoEngine(), {"id": [0, 1], "x": [1, 2]}, "responses")


def test_error_reason_is_one_short_line():
    reason = error_reason(RuntimeError("x" * 500 + "\n  at line 3"))
    assert reason.startswith("error: RuntimeError: xxx") and "\n" not in reason and len(reason) < 200
