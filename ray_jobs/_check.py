"""Imported first by every ray_jobs script: a job whose `python` is not the project's environment stops here with
the fix, instead of a bare `No module named 'ray'`. A job's `python` is whatever the PATH of `ray start` finds."""

import sys

try:
    import ray  # noqa: F401

    import scalequest  # noqa: F401
except ImportError as exc:
    sys.exit(f"{exc.name!r} is not installed for {sys.executable}: the job's `python` is not "
             f"ScaleQuest's environment. "
             f"Start Ray from it (`source .venv/bin/activate && ray start --head`; cluster.yaml does this on every "
             f"node), or name its interpreter in the entrypoint (`-- /path/to/.venv/bin/python ray_jobs/...`).")
