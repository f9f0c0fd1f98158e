"""`ray job submit --working-dir . -- python ray_jobs/train_difficulty.py --config paper [key=value ...]`

Trains the difficulty scorer (`train.difficulty`) on Ray Train. Fail-rate labels are sampled in this driver process
(an in-process vLLM solver): with `label_source: fail_rate`, add `--entrypoint-num-gpus 1` to the submit command.
"""

import sys

from scalequest.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a.startswith("ray.address=") for a in args):
        args.append("ray.address=auto")
    sys.exit(main(["train", "difficulty", *args]))
