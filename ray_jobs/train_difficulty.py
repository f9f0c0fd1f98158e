"""`ray job submit --runtime-env ray_jobs/runtime_env.yaml -- python
ray_jobs/train_difficulty.py --config paper [key=value ...]`

Joins the cluster the job runs on (ray.address=auto) and runs difficulty-scorer
training (`train.difficulty`) on Ray Train.
"""

import sys

import _check  # noqa: F401 - first: a job run by another python stops here, saying how to fix it

from scalequest.entry import job_args, run_job


def train(argv: list[str]) -> None:
    from scalequest.config import load_config
    from scalequest.train.difficulty import run_difficulty

    args = job_args(__doc__, argv)
    print(f"difficulty scorer: {run_difficulty(load_config(args.config, args.overrides))}")


if __name__ == "__main__":
    sys.exit(run_job(lambda: train(sys.argv[1:])))
