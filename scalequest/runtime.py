"""What the pipeline, Serve and training share about running on Ray: start or join Ray, the engine actors'
runtime env, model-path checks, and clean-up of the shared-memory segments vLLM leaves behind.

  init_ray(cfg.ray)            join `ray.address` or start a local Ray; True when this call started it
  ENGINE_RUNTIME_ENV           runtime_env of every vLLM-hosting actor (pipeline engines, Serve LLM replicas)
  check_model_path(key, path)  a local model folder or a hub id the hub confirms, checked before Ray starts
  daemons_on_last_cpu(on)      a local Ray's daemons (and the driver) on the CPU vLLM-CPU leaves free
  use_all_cpus()               an engine or stage actor takes back every CPU the driver had
  release_vllm_shm(...)        unlink /dev/shm/psm_* segments and sem.mp-* semaphores no live process maps

Test: tests/test_runtime.py.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import threading
import time
from pathlib import Path

from scalequest.errors import ConfigError

log = logging.getLogger(__name__)

# Ray starts worker processes at niceness 15. The engine actor (and the vLLM processes it spawns) is the hot path
# of every run: at 15 it would lose the CPU to anything at 0 and share it evenly with CPU-bound stage tasks
# (fastText, math-verify) on a saturated node, starving vLLM's scheduler loop. So it runs at niceness 0, like a
# bare vLLM. Merged with the job's runtime_env env_vars. (On the 2-core benchmark, where the stages are light,
# this changed nothing measurable: bench/README.md.)
NICENESS_ENV = "RAY_worker_niceness"  # read by every Ray worker at start (Ray's default: 15)
ENGINE_RUNTIME_ENV = {"env_vars": {NICENESS_ENV: "0"}}

# vLLM-CPU binds its worker's compute threads to every allowed core but the highest-numbered one (one logical CPU
# per core, per NUMA node) and leaves that one to its engine core. A local Ray started beside it spreads the driver
# and Ray's daemons (raylet, GCS, agents: niceness 0) over every core, and on a 2-core machine they took 6-8% of
# the worker's time (bench/README.md, session 17, `end_to_end.py --trace`). So they start on that last CPU, and the
# processes that need the machine (engine and stage actors) take every CPU back (`use_all_cpus`). Ray's workers
# started there run at niceness 0, not Ray's 15: vLLM keeps both cores busy (the worker computes, the engine core
# busy-polls), and at 15 the stage actors got so little CPU that the last blocks were scored and written only
# after vLLM had finished, 7-9 s of idle engine per tiny run (session 18).
ALL_CPUS_ENV = "SCALEQUEST_ALL_CPUS"

SHM_DIR = Path("/dev/shm")
# multiprocessing's names in /dev/shm: shared_memory segments (vLLM's message queues, 160-250 MB each) and named
# semaphores (vLLM-CPU's workers; a few KB each, left behind whenever an engine's processes are killed)
SHM_PATTERNS = ("psm_*", "sem.mp-*")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def init_ray(rcfg, *, min_cpus: float = 0, dashboard: bool | None = None) -> bool:
    """The one way every job starts or joins Ray (pipeline, Serve, every training job): connect to `rcfg.address`
    (a RayConfig), or start a local Ray with at least `min_cpus` logical CPUs (a training job's workers + its
    controller) and the dashboard when `dashboard` (default: rcfg.dashboard). `rcfg.env_vars` reach every worker.
    Returns True when this call started or joined it (the caller then shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    if min_cpus and not rcfg.address:
        rcfg = rcfg.model_copy(update={"num_cpus": max(rcfg.num_cpus or 0, math.ceil(min_cpus))})
    if dashboard is not None:
        rcfg = rcfg.model_copy(update={"dashboard": dashboard})
    with _keeping_sigterm_handler():
        _init(ray, rcfg)
    return True


@contextlib.contextmanager
def _keeping_sigterm_handler():
    """ray.init replaces the SIGTERM handler with `sys.exit(15)`: a `ray job stop` or a scheduler's SIGTERM would
    then skip the run's clean stop (no engines stopped in order, no resume command). The handler installed before
    (scalequest.entry.stop_on_signals) is put back."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if callable(before):
            signal.signal(signal.SIGTERM, before)


def _init(ray, rcfg) -> None:
    env = {"runtime_env": {"env_vars": dict(rcfg.env_vars)}} if rcfg.env_vars else {}
    if rcfg.address:
        try:
            ray.init(address=rcfg.address, **env)
        except ConnectionError as exc:
            raise ConfigError(
                f"ray.address: no Ray cluster at '{rcfg.address}' ({exc}) — start one (`ray start --head`, or "
                f"`ray up cluster.yaml`), submit with `ray job submit` (its job joins the cluster it runs on), or "
                f"leave ray.address unset for a local Ray") from None
    else:
        os.environ.update(rcfg.env_vars)  # the driver builds tokenizers / reads config too
        store = int(rcfg.object_store_gib * (1 << 30)) if rcfg.object_store_gib else None
        # address="local": never attach to another Ray that happens to run on this machine (or $RAY_ADDRESS)
        ray.init(address="local", num_cpus=rcfg.num_cpus, object_store_memory=store,
                 include_dashboard=rcfg.dashboard, **env)


@contextlib.contextmanager
def daemons_on_last_cpu(on: bool = True):
    """Inside the block this thread, and what it starts (a local Ray's daemons and workers), runs on the highest
    allowed CPU only, Ray's workers at niceness 0; every worker learns the CPUs it had from $SCALEQUEST_ALL_CPUS
    (engine and stage actors take them back). The thread gets its CPUs and environment back afterwards. Does
    nothing when `on` is false or fewer than two CPUs are allowed (or off Linux)."""
    cpus = os.sched_getaffinity(0) if on and hasattr(os, "sched_getaffinity") else set()
    if len(cpus) < 2:
        yield
        return
    env = {ALL_CPUS_ENV: ",".join(map(str, sorted(cpus))), NICENESS_ENV: "0"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    os.sched_setaffinity(0, {max(cpus)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def use_all_cpus() -> None:
    """Every thread of this process may run on the CPUs the driver had before `daemons_on_last_cpu` (no-op when no
    driver pinned its Ray). Called by engine and stage actors, whose work must not queue behind Ray's daemons."""
    cpus = os.environ.get(ALL_CPUS_ENV)
    if not cpus:
        return
    want = {int(c) for c in cpus.split(",")}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), want)


def check_model_path(key: str, value: str) -> None:
    """A model is a local folder with config.json, or a Hugging Face hub id the hub (or the local hub cache)
    confirms; anything else fails here, before any actor starts, naming the key and both ways out.

    A value like 'models/smollm2-135m-instruct' whose folder is missing (e.g. in a `ray job submit` working dir,
    which leaves the git-ignored models/ behind) reads as a hub id: the hub is asked, says no (or cannot be
    reached), and the run stops now instead of an engine retrying the hub for a minute.
    """
    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{key}: '{value}' is a folder without config.json — point it at a Hugging Face model "
                              f"folder (run 'scalequest models prepare smollm2' for the default)")
        return
    looks_local = value.startswith((".", "/", "~")) or not _HUB_ID.match(value) or Path(value.split("/")[0]).is_dir()
    if looks_local:
        raise ConfigError(f"{key}: no model folder at '{value}' (from {Path.cwd()}) — run 'scalequest models prepare "
                          f"smollm2' or fix the path; on a cluster use a path every node sees, or set root= to the "
                          f"folder that holds the config's relative paths")
    problem = _hub_problem(value)
    if problem:
        raise ConfigError(
            f"{key}: '{value}' is neither a model folder here (from {Path.cwd()}) nor a Hugging Face hub model "
            f"({problem}) — for a local model use a path every node sees: an absolute path on a shared mount, or "
            f"root=<folder that holds models/> (`ray job submit` does not upload the git-ignored models/ folder); for "
            f"a hub model check the id and the network, or download it first (`hf download {value}`)")


def _hub_problem(repo_id: str) -> str | None:
    """None when `repo_id` is a hub model (in the local hub cache, or confirmed by the hub), else why not."""
    from huggingface_hub import model_info, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return None
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return "not in the local hub cache, and HF_HUB_OFFLINE=1"
    try:
        model_info(repo_id, timeout=10)
    except Exception as exc:  # noqa: BLE001 - not found, gated, no network: each is a reason to stop here
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return None


def mapped_shm_inodes(pids=None) -> set[int]:
    """The inodes of the /dev/shm files the processes `pids` map (default: every live process on this machine this
    user may read).

    By inode, not by path: glibc's sem_open maps a temporary file and then links it to the semaphore's name, so a
    live multiprocessing semaphore shows in the maps as '/dev/shm/sem.XXXXXX (deleted)', never as its sem.mp-* name
    (by path every live semaphore looked unused, and a release unlinked one that a vLLM worker being spawned still
    had to open). psutil's memory_maps gives paths only, so the maps are read directly."""
    import psutil

    inodes: set[int] = set()
    for pid in psutil.pids() if pids is None else pids:
        try:
            with open(f"/proc/{pid}/maps") as maps:
                for line in maps:
                    if f" {SHM_DIR}/" in line:
                        inodes.add(int(line.split()[4]))
        except (OSError, ValueError, IndexError):
            continue
    return inodes


def release_vllm_shm(min_age_s: float = 0.0, only: set[Path] | None = None) -> list[Path]:
    """Unlink this user's /dev/shm/psm_* segments and sem.mp-* semaphores that no live process maps and that are at
    least `min_age_s` old (a segment is mapped right after it is made; the age guards that instant). `only` limits
    it to those paths. vLLM's engines leave 160-250 MB of segments after every shutdown, and a semaphore per killed
    worker; a killed run leaves its own. Caveat: these are Python's multiprocessing names, so an unmapped one
    another program of this user keeps on purpose would go too. Returns what it removed."""
    now, removed = time.time(), []
    candidates = [p for p in shm_segments() if only is None or p in only]
    if not candidates:
        return removed
    in_use = mapped_shm_inodes()
    for seg in candidates:
        try:
            st = seg.stat()
            if st.st_ino in in_use or now - st.st_mtime < min_age_s or st.st_uid != os.getuid():
                continue
            seg.unlink()
            removed.append(seg)
        except OSError:  # gone meanwhile, or another user's
            continue
    if removed:
        log.info("released %d shared-memory segment(s) vLLM left in %s", len(removed), SHM_DIR)
    return removed


def shm_segments() -> set[Path]:
    return {p for pattern in SHM_PATTERNS for p in SHM_DIR.glob(pattern)}
