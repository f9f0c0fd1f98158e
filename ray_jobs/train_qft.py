"""`ray job submit --working-dir . -- python ray_jobs/train_qft.py --config paper [key=value ...]`

Joins the cluster the job runs on (ray.address=auto) and runs question fine-tuning (`train.qft`) on Ray Train.
"""

import sys

from scalequest.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a.startswith("ray.address=") for a in args):
        args.append("ray.address=auto")
    sys.exit(main(["train", "qft", *args]))
