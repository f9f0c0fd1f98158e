"""Checks run before Ray starts: every model the stage plan calls or loads exists (or is a hub id the hub
confirms), every decontamination benchmark reads (a file with texts in its field), and the output folder is
writable. Each failure is a ConfigError naming the key, the value and the fix."""

from __future__ import annotations

from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.mathcheck.benchmarks import load_benchmarks
from scalequest.pipeline.plan import stage_plan, used_models
from scalequest.runtime import check_model_path


def preflight(cfg) -> None:
    for name in sorted(used_models(cfg)):
        check_model_path(f"models.{name}.path", cfg.models[name].path)
    for key, path in (load for spec in stage_plan(cfg) for load in spec.loads):
        check_model_path(key, path)
    if cfg.decontam.enabled:
        load_benchmarks(cfg.decontam.benchmarks)
    out = Path(cfg.output.dir)
    if "://" not in cfg.output.dir:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"output.dir: cannot create '{out}' ({exc.strerror}) — choose a writable folder") from None
