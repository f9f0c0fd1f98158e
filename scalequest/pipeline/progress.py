"""The run's status line: printed every `output.progress_every_s` seconds from the start of the stream (a timer
thread ticks it also while no block arrives: engines loading, a slow stage), and once at the end. Plain text (no
carriage returns), so it reads the same in a terminal and in a job's log file:

  progress: 48/64 candidates (75%), 30 kept, 6,120 tokens at 41.3 tok/s, ETA 2m10s | generate 48, language 48, …
  progress: 0/64 candidates (0%), 0 kept, 0 failed, 0 tokens at 0.0 tok/s, ETA ? | loading engine(s): smollm2

Fed by the one summary row `WriteShards` returns per block; the per-stage counts come from the stage ledger.
`RayMetrics` publishes the same figures as Ray gauges (`ray_scalequest_*` on every node's metrics endpoint, so
Prometheus and the dashboard's Grafana panels see them).
Test: tests/pipeline/test_progress.py.
"""

from __future__ import annotations

import logging
import threading
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

    `stage_rows()` (optional) returns {stage: rows processed so far}; `loading()` (optional) the models whose
    engines are still loading; `clock` is injectable for tests. `add` (the stream) and `tick` (a timer thread) may
    run in two threads.
    """

    def __init__(self, total: int, done: int = 0, kept: int = 0, every_s: float = 30.0,
                 stage_rows: Callable[[], dict] | None = None, clock: Callable[[], float] = time.monotonic,
                 metrics: RayMetrics | None = None, loading: Callable[[], list[str]] | None = None):
        self.total, self.done, self.kept, self.every_s = total, done, kept, every_s
        self.start_done, self.tokens, self.errors = done, 0, 0
        self.stage_rows, self.clock, self.metrics, self.loading = stage_rows, clock, metrics, loading
        self.t0 = self.last = clock()
        self._lock = threading.Lock()

    def add(self, summary: dict) -> None:
        """Count one block's summary row(s) (columns: rows, kept, and the token columns); log when due."""
        with self._lock:
            self.done += int(sum(summary["rows"]))
            self.kept += int(sum(summary["kept"]))
            self.errors += int(sum(summary.get("errors", [0])))
            self.tokens += int(sum(sum(summary[c]) for c in TOKEN_COLUMNS if c in summary))
        self.tick()

    def tick(self) -> None:
        """Log the status line when `every_s` has passed since the last one; else only update the metrics."""
        with self._lock:
            due = self.clock() - self.last >= self.every_s
            if due:
                self.last = self.clock()
        if due:
            log.info("%s", self.line())
        elif self.metrics is not None:
            self.metrics.update(self, None)

    def ticking(self, every_s: float) -> threading.Event:
        """Start a daemon thread that calls `tick` every `every_s` seconds until the returned event is set. A tick
        that fails (e.g. Ray going down at the end) is logged at debug level and the thread goes on."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every_s):
                try:
                    self.tick()
                except Exception as exc:  # noqa: BLE001 — the status line must never end the run
                    log.debug("progress tick failed: %r", exc)

        threading.Thread(target=loop, name="scalequest-progress", daemon=True).start()
        return stop

    def rate(self) -> float:
        return self.tokens / max(self.clock() - self.t0, 1e-9)

    def eta_s(self) -> float | None:
        made, left = self.done - self.start_done, self.total - self.done
        return 0.0 if not left else (left * (self.clock() - self.t0) / made if made else None)

    def too_many_errors(self, max_share: float) -> bool:
        """More rows of this execution failed in a stage than `max_share` of those made (at least 2 failures:
        one bad row early in a run is not a trend)."""
        return self.errors > max(1.0, max_share * (self.done - self.start_done))

    def line(self) -> str:
        """The status line (and, with `metrics`, the same figures published)."""
        eta = self.eta_s()
        text = (f"progress: {self.done:,}/{self.total:,} candidates ({100 * self.done / self.total:.0f}%), "
                f"{self.kept:,} kept, {self.errors:,} failed, {self.tokens:,} tokens at {self.rate():.1f} tok/s, "
                f"ETA {'?' if eta is None else _duration(eta)}")
        rows = self.stage_rows() if self.stage_rows is not None else {}
        if rows:
            text += " | " + ", ".join(f"{k} {v:,}" for k, v in rows.items())
        if waiting := (self.loading() if self.loading is not None else []):
            text += f" | loading engine(s): {', '.join(waiting)}"
        if self.metrics is not None:
            self.metrics.update(self, rows)
        return text


class RayMetrics:
    """The progress figures as Ray gauges tagged with the run's name: scalequest_candidates_total, _done, _kept,
    _failed, _tokens, _tokens_per_s, _eta_s, and scalequest_stage_rows per stage (needs a connected Ray)."""

    FIGURES = {
        "candidates_total": "Candidates the run draws.", "candidates_done": "Candidates on disk.",
        "kept": "Kept pairs on disk.", "failed": "Rows whose stage raised (this execution).",
        "tokens": "Tokens generated (this execution).", "tokens_per_s": "Tokens generated per second.",
        "eta_s": "Seconds left at the current rate.",
    }

    def __init__(self, run: str):
        from ray.util.metrics import Gauge

        self.tags = {"run": run}
        self.gauges = {k: Gauge(f"scalequest_{k}", description=d, tag_keys=("run",)) for k, d in self.FIGURES.items()}
        self.stages = Gauge("scalequest_stage_rows", description="Rows a stage has processed (this execution).",
                            tag_keys=("run", "stage"))

    def update(self, p: Progress, stage_rows: dict | None) -> None:
        eta = p.eta_s()
        values = dict(candidates_total=p.total, candidates_done=p.done, kept=p.kept, failed=p.errors,
                      tokens=p.tokens, tokens_per_s=p.rate(), eta_s=-1.0 if eta is None else eta)
        for k, v in values.items():
            self.gauges[k].set(float(v), tags=self.tags)
        for stage, rows in (stage_rows or {}).items():
            self.stages.set(float(rows), tags={**self.tags, "stage": stage})
