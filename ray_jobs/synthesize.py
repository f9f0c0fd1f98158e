"""`ray job submit --runtime-env ray_jobs/runtime_env.yaml -- python
ray_jobs/synthesize.py --config paper [--resume RUN_DIR] [key=value ...]`

Joins the cluster the job runs on (ray.address=auto) and runs the synthesis pipeline; `ray job stop` stops it
cleanly and prints the resume command.
"""

import sys

import _check  # noqa: F401 - first: a job run by another python stops here, saying how to fix it

from scalequest.entry import job_args, run_job


def synthesize(argv: list[str]) -> None:
    from scalequest.pipeline.run import run_synthesis
    from scalequest.pipeline.run_dir import outcome, run_config

    args = job_args(__doc__, argv, resume=True)
    print(outcome(run_synthesis(run_config(args.config, args.resume, args.overrides), args.resume)))


if __name__ == "__main__":
    sys.exit(run_job(lambda: synthesize(sys.argv[1:])))
