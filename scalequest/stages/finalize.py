"""Finalize: one output row per candidate with status kept/rejected, provenance, and the fixed Arrow schema
(`scalequest.schema.output_schema`), so every shard has the same columns and types.

  in: id, generator, seed, question, reject_stage, reject_reason (+ whatever earlier stages added)
  out: a pyarrow.Table with exactly output_schema()'s columns
"""

from __future__ import annotations

from scalequest.schema import KEPT, REJECT_REASON, REJECTED, output_schema
from scalequest.stages.base import Rejects, column, none_if_nan, require


class FinalizeRows:
    """`per_generator[name]` = {"generator_model", "sampling"}; `common` = {"judge_model", "solver_model",
    "reward_model", "config_hash"} (values copied into every row)."""

    def __init__(self, per_generator: dict, common: dict):
        self.per_generator, self.common = per_generator, common
        self.schema = output_schema()

    def __call__(self, batch: dict):
        import pyarrow as pa

        n = require("FinalizeRows", batch, ["id", "generator", "seed", "question"])
        rejects = Rejects(batch, n)
        cols = {name: [none_if_nan(v) for v in column(batch, name)] for name in self.schema.names if name in batch}
        cols.update(rejects.columns())
        cols["status"] = [KEPT if r is None else REJECTED for r in cols[REJECT_REASON]]
        if "responses" in batch:
            cols["num_answered"] = [len(r) if isinstance(r, list) else None for r in column(batch, "responses")]
        gens = cols["generator"]
        for key in ("generator_model", "sampling"):
            cols[key] = [self.per_generator.get(g, {}).get(key) for g in gens]
        for key, value in self.common.items():
            cols[key] = [value] * n
        for name in self.schema.names:
            cols.setdefault(name, [None] * n)
        return pa.Table.from_pydict({name: cols[name] for name in self.schema.names}, schema=self.schema)
