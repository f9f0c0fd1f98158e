"""The run's status line: printed every `output.progress_every_s` seconds while shards are written, and once at
the end. Plain text (no carriage returns), so it reads the same in a terminal and in a job's log file:

  progress: 48/64 candidates (75%), 30 kept, 6,120 tokens at 41.3 tok/s, ETA 2m10s | generate 48, language 48, …

Fed by the one summary row `WriteShards` returns per block; the per-stage counts come from the stage ledger.
Test: tests/pipeline/test_progress.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from scalequest.schema import TOKEN_COLUMNS

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Counts written rows against `total`; `done`/`kept` are what earlier executions of the run left on disk.

    `stage_rows()` (optional) returns {stage: rows processed so far}; `clock` is injectable for tests.
    """

    def __init__(self, total: int, done: int = 0, kept: int = 0, every_s: float = 30.0,
                 stage_rows: Callable[[], dict] | None = None, clock: Callable[[], float] = time.monotonic):
        self.total, self.done, self.kept, self.every_s = total, done, kept, every_s
        self.start_done, self.tokens, self.errors = done, 0, 0
        self.stage_rows, self.clock = stage_rows, clock
        self.t0 = self.last = clock()

    def add(self, summary: dict) -> None:
        """Count one block's summary row(s) (columns: rows, kept, and the token columns); log when due."""
        self.done += int(sum(summary["rows"]))
        self.kept += int(sum(summary["kept"]))
        self.errors += int(sum(summary.get("errors", [0])))
        self.tokens += int(sum(sum(summary[c]) for c in TOKEN_COLUMNS if c in summary))
        if self.clock() - self.last >= self.every_s:
            self.last = self.clock()
            log.info("%s", self.line())

    def too_many_errors(self, max_share: float) -> bool:
        """More rows of this execution failed in a stage than `max_share` of those made (at least 2 failures:
        one bad row early in a run is not a trend)."""
        return self.errors > max(1.0, max_share * (self.done - self.start_done))

    def line(self) -> str:
        elapsed = max(self.clock() - self.t0, 1e-9)
        made = self.done - self.start_done
        left = self.total - self.done
        eta = _duration(left * elapsed / made) if made and left else ("0s" if not left else "?")
        text = (f"progress: {self.done:,}/{self.total:,} candidates ({100 * self.done / self.total:.0f}%), "
                f"{self.kept:,} kept, {self.errors:,} failed, {self.tokens:,} tokens at {self.tokens / elapsed:.1f} tok/s, ETA {eta}")
        if self.stage_rows is not None:
            rows = self.stage_rows()
            if rows:
                text += " | " + ", ".join(f"{k} {v:,}" for k, v in rows.items())
        return text
