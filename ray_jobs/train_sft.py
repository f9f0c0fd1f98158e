"""`ray job submit --runtime-env ray_jobs/runtime_env.yaml -- python
ray_jobs/train_sft.py --config paper 'train.sft.data=[/mnt/shared/scalequest/paper-20261201-101500]' [key=value ...]`

Joins the cluster the job runs on (ray.address=auto) and fine-tunes a solver on the kept pairs of the listed run
folders (`train.sft`) on Ray Train.
"""

import sys

import _check  # noqa: F401 - first: a job run by another python stops here, saying how to fix it

from scalequest.entry import job_args, run_job


def train(argv: list[str]) -> None:
    from scalequest.config import load_config
    from scalequest.train.sft import run_sft

    args = job_args(__doc__, argv)
    print(f"fine-tuned solver: {run_sft(load_config(args.config, args.overrides))}")


if __name__ == "__main__":
    sys.exit(run_job(lambda: train(sys.argv[1:])))
