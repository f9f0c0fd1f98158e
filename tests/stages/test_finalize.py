import numpy as np
import pyarrow as pa

from scalequest.schema import output_schema
from scalequest.stages.finalize import FinalizeRows


def test_finalize_casts_to_the_output_schema_with_status_and_provenance():
    stage = FinalizeRows({"g": {"generator_model": "models/g", "sampling": "{}"}},
                         {"solver_model": "models/s", "config_hash": "abc", "num_responses": 4})
    out = stage({"id": np.array([0, 1]), "generator": ["g", "g"], "seed": [5, 6], "question": ["Q0", "Q1"],
                 "difficulty": np.array([np.nan, 0.5]), "responses": [["r"], []],
                 "reject_stage": [None, "responses"], "reject_reason": [None, "no response"]})
    assert isinstance(out, pa.Table) and out.schema == output_schema()
    rows = out.to_pylist()
    assert [r["status"] for r in rows] == ["kept", "rejected"]
    assert rows[0]["difficulty"] is None and rows[1]["difficulty"] == 0.5
    assert rows[0]["generator_model"] == "models/g" and rows[1]["config_hash"] == "abc"
    assert rows[0]["num_answered"] == 1 and rows[0]["num_responses"] == 4
