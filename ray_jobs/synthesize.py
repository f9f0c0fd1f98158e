"""`ray job submit --working-dir . -- python ray_jobs/synthesize.py --config paper [key=value ...]`

Joins the cluster the job runs on (ray.address=auto) and runs the synthesis pipeline.
"""

import sys

from scalequest.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a.startswith("ray.address=") for a in args):
        args.append("ray.address=auto")
    sys.exit(main(["synthesize", *args]))
