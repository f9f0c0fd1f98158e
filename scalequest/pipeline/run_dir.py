"""The run folder: created once per run, reopened by `--resume`.

  <output.dir>/<name>-<UTC timestamp>/
    config.yaml                  the config, paths as written (a resume checks its output-affecting keys against it)
    data/status=kept|rejected/   the shards (scalequest.pipeline.shards)
    difficulty_threshold.json    the calibrated threshold, reused by a resume
    set_aside/                   what a kill left half-written (never read as data)
    summary.json, summary.txt    the run report

`output.dir` may be a local folder or any URI pyarrow's filesystems take (s3://bucket/prefix): the run folder is a
`storage.Folder`, and every file in it is read and written through it.

Test: tests/pipeline/test_resume.py, tests/pipeline/test_object_storage.py.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import yaml

from scalequest.errors import ConfigError
from scalequest.pipeline.storage import Folder, as_folder

CONFIG_FILE = "config.yaml"
DATA_DIR = "data"
THRESHOLD_FILE = "difficulty_threshold.json"


def new_run_dir(cfg) -> Folder:
    """Create <output.dir>/<name>-<UTC timestamp>[-k]/ and write the resolved config into it."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Folder(cfg.output.dir)
    run_dir = out / f"{cfg.name}-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = out / f"{cfg.name}-{stamp}-{n}"
    run_dir.make()
    write_config(run_dir, cfg)
    return run_dir


def write_config(run_dir: Folder, cfg) -> None:
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(cfg.dump_written(), sort_keys=False))


def stored_config(run_dir: Folder | Path | str):
    """The config a run folder was started with. ConfigError when `run_dir` is not a run folder."""
    from scalequest.config import SynthesisConfig

    return SynthesisConfig.model_validate(yaml.safe_load(_config_file(run_dir).read_text()))


def _config_file(run_dir: Folder | Path | str) -> Folder:
    path = as_folder(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"--resume {run_dir}: no {CONFIG_FILE} there — pass the folder of an earlier run (it holds "
                          f"{CONFIG_FILE} and {DATA_DIR}/), as printed when that run started or stopped")
    return path


def run_config(config: str | None, resume: str | None, overrides: list[str]):
    """The config of `synthesize [--config C] [--resume RUN_DIR] overrides`: C, or the run's own config.yaml when
    only --resume is given."""
    from scalequest.config import load_config

    if config is None and resume is None:
        raise ConfigError("synthesize: pass --config (tiny, paper or a YAML path), or --resume RUN_DIR")
    return load_config(config or _config_file(resume), overrides)


def open_run(cfg, run_dir: Folder | Path | str) -> Folder:
    """Check that `cfg` may continue the run in `run_dir`: the settings that decide rows must equal the stored
    ones (runtime keys such as actors and batch sizes may differ). Returns the folder; ConfigError names every
    differing key with both values."""
    from scalequest.config import changed_output_keys

    run_dir = as_folder(run_dir)
    before = stored_config(run_dir)
    changed = changed_output_keys(before, cfg)
    if changed:
        a, b = before.output_settings(), cfg.output_settings()
        diffs = "; ".join(f"{k}: {a.get(k, '<unset>')!r} in the run, {b.get(k, '<unset>')!r} now" for k in changed)
        raise ConfigError(
            f"--resume {run_dir}: settings that change the rows differ from the run's {CONFIG_FILE}: {diffs} — "
            f"resume with the run's values ('scalequest synthesize --resume {run_dir}' reads them from its "
            f"{CONFIG_FILE}), or start a new run")
    write_config(run_dir, cfg)  # runtime keys (actors, batch sizes) may have changed: record what runs now
    return run_dir


def resume_command(run_dir: Folder) -> str:
    """The command that continues `run_dir`: the CLI's, or, inside a `ray job submit` job (Ray gives its driver
    RAY_JOB_CONFIG_JSON_ENV_VAR), the job's."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        return (f"ray job submit --runtime-env ray_jobs/runtime_env.yaml -- python ray_jobs/synthesize.py "
                f"--resume {run_dir}")
    return f"scalequest synthesize --resume {run_dir}"


def outcome(run_dir: Folder) -> str:
    """What a finished run prints: its summary and where the data and report are."""
    return (f"\n{(run_dir / 'summary.txt').read_text()}\n"
            f"kept pairs:     {run_dir / DATA_DIR / 'status=kept'}\n"
            f"rejected rows:  {run_dir / DATA_DIR / 'status=rejected'}\n"
            f"report:         {run_dir / 'summary.json'}")
