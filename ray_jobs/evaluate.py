"""`ray job submit --runtime-env ray_jobs/runtime_env.yaml -- python
ray_jobs/evaluate.py --config paper --model /mnt/shared/scalequest/models/qwen2-math-7b-sft --benchmarks gsm8k,math`

Joins the cluster the job runs on (ray.address=auto) and evaluates the model (`scalequest eval`): its engine
actors (eval.model's settings, replicas and placement) answer every benchmark item through a Ray Data stream; the
eval folder (eval.output_dir, which may be on object storage) gets results.json, results.md and the samples.
"""

import sys

import _check  # noqa: F401 - first: a job run by another python stops here, saying how to fix it

from scalequest.entry import add_eval_args, eval_request, job_args, run_job


def evaluate(argv: list[str]) -> None:
    from scalequest.config import load_config
    from scalequest.evaluation.run import render, run_eval

    args = job_args(__doc__, argv, extra=add_eval_args)
    overrides, names = eval_request(args)
    folder, results = run_eval(load_config(args.config, overrides), args.model, names)
    print(f"{render(results)}\n\neval folder: {folder}")


if __name__ == "__main__":
    sys.exit(run_job(lambda: evaluate(sys.argv[1:])))
