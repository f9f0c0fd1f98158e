"""Helpers every stage uses: column access that accepts lists or numpy arrays, the input contract check, the
keep/reject bookkeeping, `reason_kind` (a reject reason without its details, for counting) and `run_guarded`
(a stage's failures become rejects of the rows that caused them)."""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from scalequest.errors import EngineUnavailable, StageInputError
from scalequest.schema import REJECT_REASON, REJECT_STAGE


def to_py(value: Any) -> Any:
    """A numpy value (array, scalar) as plain Python; lists of arrays recursively. NaN stays NaN."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, list):
        return [to_py(v) if hasattr(v, "tolist") or isinstance(v, list) else v for v in value]
    return value


def column(batch: dict, name: str) -> list:
    """Column `name` of `batch` as a Python list (Ray passes numpy arrays, tests pass lists). A float array that is
    all NaN comes back as Nones: that is how Ray hands over a block's all-null column (Arrow type null → numpy
    NaN), whatever its type in other blocks; passed on as NaN it would become a double column that no longer
    concatenates with a string one (question_hash of a block that no question of reached dedup)."""
    value = batch[name]
    if getattr(value, "dtype", None) is not None and value.dtype.kind == "f" and value.size and (value != value).all():
        return [None] * len(value)
    return to_py(value)


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
    """Group detailed reasons: drop quoted values, parentheses and numbers that stand alone ("language 'fr'
    (fastText 0.87)" → "language"; "contaminated: gsm8k_test item 17 (…)" → "contaminated: gsm8k_test item")."""
    kind = re.sub(r"\s*\([^)]*\)|'[^']*'|\b\d+(\.\d+)?\b", "", reason)
    return re.sub(r"\s+", " ", kind).strip(" :-") or reason


def passthrough(batch: dict) -> dict:
    """A shallow copy of the batch with every column as a Python list."""
    return {k: column(batch, k) for k in batch}


ERROR_PREFIX = "error: "


def error_reason(exc: BaseException) -> str:
    """'error: <type>: <message>' on one line, at most ~200 characters (a reject reason, not a traceback)."""
    message = " ".join(str(exc).split())
    return f"{ERROR_PREFIX}{type(exc).__name__}: {message[:160]}"


def run_guarded(stage, batch: dict, name: str, on_error=None) -> dict:
    """`stage(batch)`; when it raises (anything but a broken contract, StageInputError), the batch again one row at
    a time: rows that still raise become rejects of stage `name` with `error_reason`, the others keep the stage's
    output. `on_error(row_index, exc)` is told about each failing row (logging). One bad row never fails its
    batch, and one bad batch never fails the run. An engine that is gone (EngineUnavailable: failed to load, or
    dead past its restarts) is no fault of the rows: it fails the batch, so no row is written and the run stops
    resumable."""
    try:
        return stage(batch)
    except (StageInputError, EngineUnavailable):
        raise
    except Exception:  # noqa: BLE001 - isolated row by row below
        if not batch:
            raise
        n = len(next(iter(batch.values())))
    outs: list[dict | None] = []
    for i in range(n):
        row = {k: v[i:i + 1] for k, v in batch.items()}
        try:
            outs.append(passthrough(stage(row)))
        except (StageInputError, EngineUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - the row becomes a reject with the reason
            if on_error is not None:
                on_error(i, exc)
            failed = passthrough(row)
            failed[REJECT_STAGE], failed[REJECT_REASON] = [name], [error_reason(exc)]
            outs.append(failed)
    keys = list(dict.fromkeys(k for o in outs for k in o))
    return {k: [o[k][0] if k in o else None for o in outs] for k in keys}
