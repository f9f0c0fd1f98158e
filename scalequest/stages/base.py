"""Helpers every stage uses: column access that accepts lists or numpy arrays, the input contract check, the
keep/reject bookkeeping and `reason_kind` (a reject reason without its details, for counting)."""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from scalequest.errors import StageInputError
from scalequest.schema import REJECT_REASON, REJECT_STAGE


def to_py(value: Any) -> Any:
    """A numpy value (array, scalar) as plain Python; lists of arrays recursively. NaN stays NaN."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, list):
        return [to_py(v) if hasattr(v, "tolist") or isinstance(v, list) else v for v in value]
    return value


def column(batch: dict, name: str) -> list:
    """Column `name` of `batch` as a Python list (Ray passes numpy arrays, tests pass lists)."""
    return to_py(batch[name])


def require(stage: str, batch: dict, needed: Iterable[str]) -> int:
    """Check the batch has every column in `needed` with equal lengths; return the row count."""
    missing = [c for c in needed if c not in batch]
    if missing:
        raise StageInputError(
            f"{stage}: batch is missing column(s) {missing}; present: {sorted(batch)} — "
            f"run the stages that produce them first"
        )
    lengths = {len(batch[c]) for c in batch}
    if len(lengths) > 1:
        raise StageInputError(f"{stage}: columns have different lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def none_if_nan(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def list_or_none(value) -> list | None:
    """A list cell as a list; a null cell (None, or the NaN Ray puts in an all-null column) as None."""
    return value if isinstance(value, list) else None


class Rejects:
    """The `reject_stage` / `reject_reason` columns of a batch, created if absent; earlier rejects are kept."""

    def __init__(self, batch: dict, n: int):
        self.stage = [none_if_nan(v) for v in column(batch, REJECT_STAGE)] if REJECT_STAGE in batch else [None] * n
        self.reason = [none_if_nan(v) for v in column(batch, REJECT_REASON)] if REJECT_REASON in batch else [None] * n

    def kept(self) -> list[int]:
        """Indices of rows no stage has rejected yet."""
        return [i for i, r in enumerate(self.reason) if r is None]

    def reject(self, i: int, stage: str, reason: str) -> None:
        self.stage[i], self.reason[i] = stage, reason

    def columns(self) -> dict:
        return {REJECT_STAGE: self.stage, REJECT_REASON: self.reason}


def reason_kind(reason: str) -> str:
    """Group detailed reasons: drop quoted values, parentheses and numbers ("language 'fr' (fastText 0.87)" →
    "language")."""
    kind = re.sub(r"\s*\([^)]*\)|'[^']*'|\d+(\.\d+)?", "", reason)
    return re.sub(r"\s+", " ", kind).strip(" :-") or reason


def passthrough(batch: dict) -> dict:
    """A shallow copy of the batch with every column as a Python list."""
    return {k: column(batch, k) for k in batch}
