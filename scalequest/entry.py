"""How a command runs, for the `scalequest` CLI and the `ray_jobs/` entry points alike: its arguments, logging,
Ctrl-C / SIGTERM, and exit codes (0 done, 2 a ScaleQuestError such as a bad config, 130 stopped). Light imports
only: `scalequest --help` stays fast.

  add_config_args(parser)   --config C and key=value overrides
  job_overrides(overrides)  the overrides plus ray.address=auto: a `ray job submit` job joins its cluster
  job_args(doc, argv)       a ray_jobs script's arguments: --config, [--resume], overrides (+ ray.address=auto)
  run_command(fn)           fn() → exit code, a ScaleQuestError printed as one line
  run_job(fn)               run_command with logging and the stop signals installed (the ray_jobs scripts)

Test: tests/test_cli.py.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable

from scalequest.errors import RunInterrupted, ScaleQuestError


def add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--config", required=required, help="YAML path or packaged name: tiny, paper")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. num_candidates=50")


def job_overrides(overrides: list[str]) -> list[str]:
    """A job started by `ray job submit` joins the cluster it runs on, unless the overrides name another."""
    return overrides if any(o.startswith("ray.address=") for o in overrides) else [*overrides, "ray.address=auto"]


def job_args(doc: str, argv: list[str], resume: bool = False, extra=None) -> argparse.Namespace:
    """Parse a `ray_jobs/` script's command line (`doc` = its docstring, shown by --help); `extra(parser)` adds the
    job's own arguments."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, required=not resume)
    if extra is not None:
        extra(p)
    if resume:
        p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in this folder (in a place every node "
                       "sees); its config.yaml unless --config is given")
    args = p.parse_args(argv)
    args.overrides = job_overrides(args.overrides)
    return args


def add_eval_args(p: argparse.ArgumentParser) -> None:
    """`scalequest eval`'s own arguments (the CLI and ray_jobs/evaluate.py)."""
    p.add_argument("--model", required=True, help="model folder or hub id to evaluate (engine settings from "
                   "eval.model, default the solver's)")
    p.add_argument("--benchmarks", help="comma-separated names from eval.benchmarks (default: all), e.g. gsm8k,math")
    p.add_argument("--limit", type=int, help="the first N items of each benchmark (eval.limit)")
    p.add_argument("--samples", type=int, help="answers per question, k (eval.samples; k > 1 needs "
                   "eval.sampling.temperature > 0)")


def eval_request(args) -> tuple[list[str], list[str] | None]:
    """(config overrides with --limit / --samples folded in, benchmark names or None for all) from `args`."""
    overrides = list(args.overrides)
    if args.limit is not None:
        overrides.append(f"eval.limit={args.limit}")
    if args.samples is not None:
        overrides.append(f"eval.samples={args.samples}")
    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()] if args.benchmarks else None
    return overrides, names


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (`ray job stop`, a scheduler) both end a long command cleanly. SIGINT is set explicitly:
    a process started in the background by a non-interactive shell inherits SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def run_command(fn: Callable[[], object]) -> int:
    """Call `fn`; its int result (None = 0) is the exit code. A stopped run is 130, a ScaleQuestError 2, each
    printed as one line on stderr (the error already says what to do)."""
    try:
        result = fn()
    except RunInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 130
    except ScaleQuestError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


def run_job(fn: Callable[[], object]) -> int:
    """What a `ray_jobs/` script's main does: logging, the stop signals, then `run_command(fn)`."""
    configure_logging()
    stop_on_signals()
    return run_command(fn)
