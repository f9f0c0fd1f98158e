"""`ray job submit --working-dir . --entrypoint-num-gpus 1 -- python ray_jobs/train_qpo.py --config paper [key=value ...]`

Runs QPO (`train.qpo`): the preference data is built in this driver process (in-process vLLM engines for the QFT
model and a local optimizer / judge, so give the entrypoint a GPU), then DPO runs on Ray Train on the cluster.
"""

import sys

from scalequest.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a.startswith("ray.address=") for a in args):
        args.append("ray.address=auto")
    sys.exit(main(["train", "qpo", *args]))
