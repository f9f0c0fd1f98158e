"""Resume bookkeeping, side by side in one run: the pipeline's shard ledger against Ray Data's own checkpointing,
on the same rows (finalized-row-shaped: id, status, question, response, reject reason, token counts) made by one
cheap map stage from `ray.data.range(N)` in blocks of `--block` rows.

  ledger       range → rows → `WriteShards` (one atomic shard per status per block, a summary row back to the
               driver) → iter_batches; restore = `scan_shards` + `remaining_ids` over the finished folder
  ray ckpt     `DataContext.checkpoint_config = CheckpointConfig(id_column="id", ...)`, range → rows →
               `write_parquet(partition_cols=["status"])`; restore = the same dataset run again (every id is
               checkpointed, so Ray Data filters every row out)
  plain write  range → rows → `write_parquet(partition_cols=["status"])`, no checkpointing: the floor

Each is timed per execution (median of `--repeats`), with the files it leaves. Ray Data's checkpointing only
switches on for a plan that starts at a Read (range, read_parquet) and ends in a Write; the pipeline's resumed
input (`from_arrow` of the remaining ids) is neither, and a Write sink returns nothing to the driver while it runs
(no progress line, no error share): that is what the ledger gives beyond the timing.

Run:  .venv/bin/python bench/resume_ledger.py [--rows 100000] [--block 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generation_throughput import write_json  # noqa: E402


def make_rows(batch):
    """ids → finalized-row-shaped columns (sizes like a kept pair: ~200-char question, ~1,200-char response)."""
    import pyarrow as pa

    ids = batch["id"].to_pylist()
    kept = [i % 2 == 0 for i in ids]
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "status": ["kept" if k else "rejected" for k in kept],
        "question": [f"Question {i}: " + "x" * 200 for i in ids],
        "response": [("Step. " * 200) if k else None for k in kept],
        "reject_reason": [None if k else "language: 'de'" for k in kept],
        "question_tokens": [50] * len(ids), "judge_tokens": [40] * len(ids), "response_tokens": [1500] * len(ids),
    })


def dataset(n: int, block: int):
    import ray

    return ray.data.range(n, override_num_blocks=max(1, n // block)).map_batches(
        make_rows, batch_format="pyarrow", batch_size=None)


def ledger_run(n: int, block: int, run_dir: Path) -> float:
    from scalequest.pipeline.shards import WriteShards

    t0 = time.perf_counter()
    ds = dataset(n, block).map_batches(WriteShards(run_dir), batch_format="pyarrow", batch_size=None)
    rows = sum(len(b["rows"]) and int(b["rows"].sum()) for b in ds.iter_batches(batch_size=None, batch_format="numpy"))
    assert rows == n, rows
    return time.perf_counter() - t0


def ledger_restore(n: int, run_dir: Path) -> float:
    from scalequest.pipeline.shards import remaining_ids, scan_shards

    t0 = time.perf_counter()
    todo = remaining_ids(n, scan_shards(run_dir).ids)
    assert len(todo) == 0
    return time.perf_counter() - t0


def write_run(n: int, block: int, out: Path, ckpt: Path | None) -> float:
    from ray.data import DataContext
    from ray.data.checkpoint import CheckpointConfig

    ctx = DataContext.get_current()
    # kept after success (the default deletes it), so the second execution finds every id checkpointed
    ctx.checkpoint_config = CheckpointConfig(id_column="id", checkpoint_path=str(ckpt),
                                             delete_checkpoint_on_success=False) if ckpt else None
    try:
        t0 = time.perf_counter()
        dataset(n, block).write_parquet(str(out), partition_cols=["status"])
        return time.perf_counter() - t0
    finally:
        ctx.checkpoint_config = None


def files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench/results/resume_ledger.json")
    args = p.parse_args(argv)
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    work = Path(tempfile.mkdtemp(prefix="scalequest-ledger-"))
    times: dict[str, list[float]] = {k: [] for k in ("ledger", "ledger restore", "ray ckpt", "ray ckpt restore",
                                                      "plain write")}
    counts = {}
    try:
        for r in range(args.repeats):  # interleaved, so drift hits every variant
            run = work / f"ledger-{r}"
            times["ledger"].append(ledger_run(args.rows, args.block, run))
            times["ledger restore"].append(ledger_restore(args.rows, run))
            out, ckpt = work / f"ckpt-out-{r}", work / f"ckpt-{r}"
            times["ray ckpt"].append(write_run(args.rows, args.block, out, ckpt))
            counts = {"ledger files": files(run / "data"), "ray ckpt data files": files(out),
                      "ray ckpt checkpoint files": files(ckpt)}
            times["ray ckpt restore"].append(write_run(args.rows, args.block, work / f"ckpt-again-{r}", ckpt))
            times["plain write"].append(write_run(args.rows, args.block, work / f"plain-{r}", None))
            for d in (run, out, ckpt, work / f"ckpt-again-{r}", work / f"plain-{r}"):
                shutil.rmtree(d, ignore_errors=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: round(statistics.median(v), 2) for k, v in times.items()}
    print(f"\n{args.rows:,} rows in blocks of {args.block} ({args.rows // args.block} blocks), median of "
          f"{args.repeats}, {os.cpu_count()} CPUs")
    for k, v in med.items():
        print(f"  {k:18} {v:8.2f} s   (runs: {', '.join(f'{x:.2f}' for x in times[k])})")
    print(f"  files: {counts}")
    result = dict(rows=args.rows, block=args.block, repeats=args.repeats, median_s=med, runs_s=times, files=counts)
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
