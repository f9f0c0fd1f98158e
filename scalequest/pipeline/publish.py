"""`scalequest publish RUN_DIR --repo ID`: upload a run's dataset card, plots and kept shards (the rejected ones
only with `--include-rejected`) to a Hugging Face dataset repo with `huggingface_hub`. `--dry-run` lists what
would go, with sizes, and needs no token. It reads a local run folder: a run on object storage is copied down
first (`aws s3 sync s3://bucket/prefix/RUN ./RUN`); `scalequest card` works on either.

Test: tests/pipeline/test_card.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from scalequest.errors import ConfigError
from scalequest.pipeline.card import CARD_FILE
from scalequest.pipeline.plots import PLOTS_DIR
from scalequest.pipeline.run_dir import CONFIG_FILE, DATA_DIR
from scalequest.pipeline.storage import is_uri

log = logging.getLogger(__name__)


def publish_files(run_dir: Path, include_rejected: bool = False) -> list[str]:
    """The run-relative paths an upload sends: README.md, config.yaml, summary.json, the plots, the kept shards
    (and the rejected ones when asked). Raises ConfigError when the folder has no card or no kept shard."""
    if is_uri(str(run_dir)):
        raise ConfigError(f"publish: '{run_dir}' is on object storage; copy it to a local folder first (e.g. "
                          f"`aws s3 sync {run_dir} ./{str(run_dir).rstrip('/').rsplit('/', 1)[-1]}`) and publish that")
    run_dir = Path(run_dir)
    if not (run_dir / CARD_FILE).is_file():
        raise ConfigError(f"publish: no {CARD_FILE} in '{run_dir}' — it is written at the end of a run; write it "
                          f"now with `scalequest card {run_dir}`")
    kept = sorted((run_dir / DATA_DIR / "status=kept").glob("*.parquet"))
    if not kept:
        raise ConfigError(f"publish: '{run_dir}' has no kept shards ({DATA_DIR}/status=kept/*.parquet) — nothing to "
                          f"publish; finish the run first (`scalequest synthesize --resume {run_dir}`)")
    files = [run_dir / CARD_FILE, run_dir / CONFIG_FILE, run_dir / "summary.json",
             *sorted((run_dir / PLOTS_DIR).glob("*.png")), *kept]
    if include_rejected:
        files += sorted((run_dir / DATA_DIR / "status=rejected").glob("*.parquet"))
    return [str(f.relative_to(run_dir)) for f in files if f.is_file()]


def publish(run_dir: Path, repo: str, *, dry_run: bool = False, include_rejected: bool = False,
            private: bool = False) -> list[str]:
    """Upload (or with `dry_run` only list) `publish_files` to dataset repo `repo`; returns the paths."""
    run_dir = Path(run_dir)
    files = publish_files(run_dir, include_rejected)
    token = None
    if not dry_run:
        from huggingface_hub import get_token

        token = get_token()
        if not token:
            raise ConfigError("publish: no Hugging Face token — set HF_TOKEN to a write token (huggingface.co/"
                              "settings/tokens) or run `hf auth login`; `--dry-run` lists the files without one")
    total = sum((run_dir / f).stat().st_size for f in files)
    print(f"{'would upload' if dry_run else 'uploading'} {len(files)} files ({total / 2**20:.1f} MiB) to the "
          f"dataset repo {repo}{' (private)' if private else ''}:")
    for f in files:
        print(f"  {(run_dir / f).stat().st_size:>12,}  {f}")
    if not include_rejected:
        print("  (rejected shards not included: add --include-rejected to publish them too)")
    if dry_run:
        return files
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(run_dir), repo_id=repo, repo_type="dataset", allow_patterns=files,
                      commit_message=f"ScaleQuest run {run_dir.name}")
    print(f"published: {url}")
    return files
