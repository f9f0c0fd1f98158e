"""Checks run before Ray starts: every model path the config names exists (or is a plausible hub id), and the
output folder is writable. Each failure is a ConfigError naming the key, the value and the fix."""

from __future__ import annotations

import os
import re
from pathlib import Path

from scalequest.errors import ConfigError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_model_path(key: str, value: str) -> None:
    """Local folders must exist and hold config.json; 'org/name' hub ids pass unless 'org' is a local folder."""
    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{key}: '{value}' is a folder without config.json — point it at a Hugging Face model "
                              f"folder (run 'scalequest models prepare smollm2' for the default)")
        return
    looks_local = value.startswith((".", "/", "~")) or not _HUB_ID.match(value) or Path(value.split("/")[0]).is_dir()
    if looks_local or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ConfigError(f"{key}: no model folder at '{value}' — run 'scalequest models prepare smollm2' "
                          f"or fix the path")


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
