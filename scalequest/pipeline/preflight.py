"""Checks run before Ray starts: every model path the config names exists (or is a plausible hub id), and the
output folder is writable. Each failure is a ConfigError naming the key, the value and the fix."""

from __future__ import annotations

from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.runtime import check_model_path


def preflight(cfg) -> None:
    used = {g.model for g in cfg.generators} | {cfg.responses.model}
    if cfg.solvability.enabled:
        used.add(cfg.solvability.model)
    for name in sorted(used):
        check_model_path(f"models.{name}.path", cfg.models[name].path)
    if cfg.difficulty.model_path:
        check_model_path("difficulty.model_path", cfg.difficulty.model_path)
    if cfg.reward.model_path and cfg.reward.kind != "agreement":
        check_model_path("reward.model_path", cfg.reward.model_path)
    out = Path(cfg.output.dir)
    if "://" not in cfg.output.dir:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"output.dir: cannot create '{out}' ({exc.strerror}) — choose a writable folder") from None
