"""The difficulty drop thresholds of a run, one per generator: fixed (`difficulty.threshold`), read back from the
run folder (a resumed run), or calibrated once on the run's first `difficulty.calibration_candidates` ids.

Calibration streams those candidates through the stages up to the scorer (`build.scored_dataset`, with its own
dedup set and ledger, writing nothing) and brings only their generator and score to the driver. The run then
streams every id, those included: rows are seeded per id, so they come out the same, and nothing waits for a
threshold mid-stream. The thresholds are stored before the first shard is written, so every row on disk was
dropped or kept by them.

Test: tests/pipeline/test_run.py (tiny scorer), tests/pipeline/test_resume.py (reused after SIGKILL).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def generator_shares(cfg) -> dict[str, float]:
    """Each generator's drop share: its own `drop_easiest_share`, else difficulty.drop_easiest_share."""
    d = cfg.difficulty.drop_easiest_share
    return {g.name: d if g.drop_easiest_share is None else g.drop_easiest_share for g in cfg.generators}


def difficulty_thresholds(cfg, engines: dict, ids, threshold_file: Path) -> dict[str, float | None]:
    """Per generator, the difficulty below which its questions are dropped (None = keep all)."""
    shares = generator_shares(cfg)
    d = cfg.difficulty
    if d.threshold is not None:  # every generator but one that sets its own share to 0
        return {g.name: None if g.drop_easiest_share == 0 else d.threshold for g in cfg.generators}
    threshold_file = Path(threshold_file)
    if threshold_file.is_file():
        stored = json.loads(threshold_file.read_text())["thresholds"]
        log.info("difficulty: thresholds from %s: %s", threshold_file, stored)
        return stored
    if not any(shares.values()):
        thresholds = dict.fromkeys(shares)
    else:
        thresholds = _calibrate(cfg, engines, ids[: d.calibration_candidates], shares)
    threshold_file.write_text(json.dumps({"thresholds": thresholds, "shares": shares,
                                          "calibration_candidates": int(min(len(ids), d.calibration_candidates))}))
    return thresholds


def _calibrate(cfg, engines: dict, ids, shares: dict[str, float]) -> dict[str, float | None]:
    import math

    from scalequest.pipeline.actors import StageLedger
    from scalequest.pipeline.build import scored_dataset
    from scalequest.stages.base import to_py
    from scalequest.stages.difficulty import generator_thresholds

    log.info("difficulty: calibrating on the first %d candidates", len(ids))
    ds = scored_dataset(cfg, engines, StageLedger.remote(), ids).select_columns(
        ["generator", "difficulty", "reject_reason"])
    scores: dict[str, list[float]] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for g, s, r in zip(to_py(batch["generator"]), to_py(batch["difficulty"]), to_py(batch["reject_reason"])):
            if r is None and s is not None and not (isinstance(s, float) and math.isnan(s)):
                scores.setdefault(g, []).append(s)
    thresholds = generator_thresholds(scores, shares)
    for name, t in thresholds.items():
        log.info("difficulty: %s drops scores below %s (easiest %.0f%% of %d scored)", name, t,
                 100 * shares[name], len(scores.get(name, [])))
    return thresholds
