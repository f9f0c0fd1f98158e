"""Checks run before Ray starts: every model the stage plan calls or loads exists (or is a hub id the hub
confirms), every decontamination benchmark reads (a file with texts in its field), and the output folder is
writable (a local folder is created; on object storage a probe object is written and deleted, which checks the
bucket and the credentials). Each failure is a ConfigError naming the key, the value and the fix."""

from __future__ import annotations

import uuid
from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.mathcheck.benchmarks import load_benchmarks
from scalequest.pipeline.plan import stage_plan, used_models
from scalequest.pipeline.storage import Folder, is_uri
from scalequest.runtime import check_model_path


def preflight(cfg) -> None:
    for name in sorted(used_models(cfg)):
        check_model_path(f"models.{name}.path", cfg.models[name].path)
    for key, path in (load for spec in stage_plan(cfg) for load in spec.loads):
        check_model_path(key, path)
    if cfg.decontam.enabled:
        load_benchmarks(cfg.decontam.benchmarks)
    check_output_dir(cfg.output.dir)


def check_output_dir(location: str) -> None:
    """Create the local output folder, or write and delete a probe object under the URI."""
    if not is_uri(location):
        out = Path(location)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"output.dir: cannot create '{out}' ({exc.strerror}) — choose a writable "
                              "folder") from None
        return
    probe = Folder(location) / f".scalequest-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_text("")
        probe.fs.delete_file(probe.path)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"output.dir: cannot write to '{location}' ({str(exc).splitlines()[0]}) — check that the bucket exists "
            "and that the credentials in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
            "AWS_ENDPOINT_URL for an S3-compatible server) may write there") from None
