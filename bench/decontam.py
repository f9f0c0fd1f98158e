"""Benchmark decontamination: index build time, lookup rate and what it flags, for the configured benchmarks.

Builds `scalequest.mathcheck.benchmarks.BenchmarkIndex` from a config's `decontam.benchmarks` (tiny: GSM8K test +
MATH test from ../shared/data), as each decontam stage actor does once, and matches every question of the probe
sets against it, as the stage does per row. Per n-gram length: load and build seconds, index entries and the RSS
it adds (psutil), lookups/s (single process), and per probe set the share flagged, by benchmark and by kind.
Medians over `--repeats`.

Probe sets: MATH train + GSM8K train (written by people, partly from the same sources as the test sets) and the
100 published ScaleQuest samples (the paper reports ~97% of its data 13-gram clean).

Run:  .venv/bin/python bench/decontam.py [--config tiny] [--ngram 13 8] [--repeats 3]
      [--out bench/results/decontam.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import psutil

from scalequest.config import load_config
from scalequest.mathcheck.benchmarks import BenchmarkIndex, load_benchmarks

SHARED = Path("../shared/data")
PROBES = {"math_train": (SHARED / "math/train.jsonl", "problem"),
          "gsm8k_train": (SHARED / "gsm8k/train.jsonl", "question"),
          "scalequest_samples": (SHARED / "scalequest_samples/samples.jsonl", "query")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="tiny")
    p.add_argument("--ngram", type=int, nargs="+", default=[13])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench/results/decontam.json")
    return p.parse_args(argv)


def read(path: Path, field: str) -> list[str]:
    with open(path) as f:
        return [json.loads(line)[field] for line in f if line.strip()]


def measure(specs, n: int, probes: dict[str, list[str]]) -> dict:
    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    benchmarks = load_benchmarks(specs)
    t1 = time.perf_counter()
    index = BenchmarkIndex(benchmarks, n)
    t2 = time.perf_counter()
    rss = proc.memory_info().rss - rss0
    flagged, lookups, seconds = {}, 0, 0.0
    for name, questions in probes.items():
        t = time.perf_counter()
        matches = [m for m in map(index.match, questions) if m]
        seconds += time.perf_counter() - t
        lookups += len(questions)
        flagged[name] = {"questions": len(questions), "flagged": len(matches),
                         "share": round(len(matches) / len(questions), 4),
                         "by_benchmark": dict(Counter(m.benchmark for m in matches)),
                         "by_kind": dict(Counter(m.kind for m in matches)),
                         "examples": [m.reason() for m in matches[:3]]}
    return {"load_s": t1 - t0, "build_s": t2 - t1, "entries": len(index), "exact_entries": len(index.exact),
            "items": {k: len(v) for k, v in benchmarks.items()}, "rss_mib": rss / 2**20,
            "lookups_per_s": lookups / seconds, "flagged": flagged}


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config)
    probes = {name: read(path, field) for name, (path, field) in PROBES.items()}
    results = {}
    for n in args.ngram:
        runs = [measure(cfg.decontam.benchmarks, n, probes) for _ in range(args.repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("load_s", "build_s", "rss_mib", "lookups_per_s")}
        results[n] = {**runs[-1], **med, "repeats": len(runs)}
    lines = [f"decontamination index ({args.config}: {', '.join(b.label for b in cfg.decontam.benchmarks)}), "
             f"medians of {args.repeats}", "",
             "| n | items | n-gram entries | load (s) | build (s) | RSS added (MiB) | lookups/s | "
             + " | ".join(f"{p} flagged" for p in PROBES) + " |",
             "|---" * (7 + len(PROBES)) + "|"]
    for n, r in results.items():
        shares = " | ".join(f"{r['flagged'][p]['flagged']} of {r['flagged'][p]['questions']} "
                            f"({100 * r['flagged'][p]['share']:.1f}%)" for p in PROBES)
        lines.append(f"| {n} | {sum(r['items'].values()):,} | {r['entries']:,} | {r['load_s']:.2f} | "
                     f"{r['build_s']:.2f} | {r['rss_mib']:.0f} | {r['lookups_per_s']:,.0f} | {shares} |")
    for n, r in results.items():
        for p in PROBES:
            f = r["flagged"][p]
            lines.append(f"n={n} {p}: by benchmark {f['by_benchmark']}, by kind {f['by_kind']}")
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results, "table": text}, indent=2) + "\n")


if __name__ == "__main__":
    main()
