"""The difficulty calibration of a run, per generator: the drop threshold (fixed `difficulty.threshold`, or the
score below which the easiest share lies) and, with target shares set, each difficulty bin's acceptance
probability (`stages.difficulty.bin_acceptance` over the scores that pass the threshold). Read back from the run
folder (a resumed run), or calibrated once on the run's first `difficulty.calibration_candidates` ids.

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
from collections.abc import Callable

from scalequest.pipeline.storage import Folder, as_folder
from scalequest.stages.difficulty import bin_acceptance, bin_counts, generator_thresholds

log = logging.getLogger(__name__)


def generator_shares(cfg) -> dict[str, float]:
    """Each generator's drop share: its own `drop_easiest_share`, else difficulty.drop_easiest_share."""
    d = cfg.difficulty.drop_easiest_share
    return {g.name: d if g.drop_easiest_share is None else g.drop_easiest_share for g in cfg.generators}


def generator_targets(cfg) -> dict[str, list[float] | None]:
    """Each generator's difficulty bin target shares: its own, else difficulty.target_shares (None = no sampling)."""
    t = cfg.difficulty.target_shares
    return {g.name: t if g.difficulty_target_shares is None else g.difficulty_target_shares for g in cfg.generators}


def difficulty_calibration(cfg, sample: Callable[[], dict[str, list[float]]], threshold_file: Folder) -> dict:
    """{"thresholds": generator → score below which questions are dropped (None = keep all), "acceptance":
    generator → per-bin keep probabilities (None = no sampling)}, stored in `threshold_file` (and read back from
    it on a resume). `sample()` scores the calibration candidates (`calibration_scores`); it is called only when
    a share or a target needs it."""
    shares, targets, d = generator_shares(cfg), generator_targets(cfg), cfg.difficulty
    threshold_file = as_folder(threshold_file)
    if threshold_file.is_file():
        stored = json.loads(threshold_file.read_text())
        calib = {"thresholds": stored["thresholds"], "acceptance": stored.get("acceptance", {})}
        log.info("difficulty: calibration from %s: %s", threshold_file, calib)
        return calib
    fixed = None
    if d.threshold is not None:  # every generator but one that sets its own share to 0
        fixed = {g.name: None if g.drop_easiest_share == 0 else d.threshold for g in cfg.generators}
    needed = any(targets.values()) or (fixed is None and any(shares.values()))
    scores = sample() if needed else {}
    thresholds = fixed or generator_thresholds(scores, shares)
    acceptance = {}
    for name, target in targets.items():
        passed = [x for x in scores.get(name, []) if thresholds.get(name) is None or x >= thresholds[name]]
        acceptance[name] = bin_acceptance(passed, d.bin_edges, target) if target else None
        if target:
            counts = bin_counts(passed, d.bin_edges)
            log.info("difficulty: %s keeps bins %s with p=%s (sample %s, target %s)", name, d.names,
                     [round(a, 3) for a in acceptance[name]], counts, target)
            if any(t > 0 and c == 0 for t, c in zip(target, counts)):
                log.warning("difficulty: %s: a bin with a target share has no question in the calibration sample "
                            "(its share cannot be reached); raise difficulty.calibration_candidates or change "
                            "difficulty.bin_edges", name)
    for name, t in thresholds.items():
        log.info("difficulty: %s drops scores below %s (easiest %.0f%% of %d scored)", name, t,
                 100 * shares[name], len(scores.get(name, [])))
    threshold_file.write_text(json.dumps({
        "thresholds": thresholds, "acceptance": acceptance, "shares": shares, "targets": targets,
        "bin_edges": d.bin_edges, "calibration_scored": {g: len(v) for g, v in scores.items()}}))
    return {"thresholds": thresholds, "acceptance": acceptance}


def calibration_scores(cfg, engines: dict, ids) -> dict[str, list[float]]:
    """Generator → difficulty scores of the first `difficulty.calibration_candidates` of `ids` that reached the
    scorer (streamed through the stages up to the scorer, writing nothing)."""
    import math

    from scalequest.pipeline.actors import StageLedger
    from scalequest.pipeline.build import scored_dataset
    from scalequest.stages.base import to_py

    ids = ids[: cfg.difficulty.calibration_candidates]
    log.info("difficulty: calibrating on the first %d candidates", len(ids))
    ds = scored_dataset(cfg, engines, StageLedger.remote(), ids).select_columns(
        ["generator", "difficulty", "reject_reason"])
    scores: dict[str, list[float]] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for g, s, r in zip(to_py(batch["generator"]), to_py(batch["difficulty"]), to_py(batch["reject_reason"])):
            if r is None and s is not None and not (isinstance(s, float) and math.isnan(s)):
                scores.setdefault(g, []).append(s)
    return scores
