"""Shared fixtures: a tiny random-weight Llama (built offline, seconds to load in vLLM), one in-process vLLM engine
for the session, the shared data folder, and clean-up of the /dev/shm segments vLLM leaves behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_data_dir() -> Path:
    return Path(os.environ.get("SCALEQUEST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set SCALEQUEST_SHARED_DATA)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _session_env(tmp_path_factory):
    os.environ.setdefault("VLLM_CACHE_ROOT", str(tmp_path_factory.mktemp("vllm-cache")))
    from scalequest.runtime import release_vllm_shm, shm_segments

    before = shm_segments()
    yield
    # vLLM engines leave these after shutdown; one a parallel test run still maps is kept
    release_vllm_shm(only=shm_segments() - before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama causal LM folder with a ChatML byte-level tokenizer."""
    from scalequest.engines.prepare import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_scorer_model(tmp_path_factory) -> Path:
    """A tiny random LlamaForSequenceClassification (num_labels=1): a real reward / difficulty model."""
    from scalequest.engines.prepare import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-scorer", num_labels=1)


# Tiny random models run in vLLM in float32. In bf16 on an Intel Xeon with AMX, vLLM-CPU's attention used AMX
# tiles without Linux's permission and the worker died with SIGILL (docs/install.md, known issues); the product's
# fix (scalequest/engines/amx.py) is tested on its own in bf16 by tests/engines/test_amx.py.
TINY_DTYPE = "float32"


@pytest.fixture(scope="session")
def tiny_llm(tiny_model) -> list[str]:
    """Overrides that point the packaged config's one model (`smollm2`) at the tiny random Llama, in TINY_DTYPE."""
    return [f"models.smollm2.path={tiny_model}", f"models.smollm2.dtype={TINY_DTYPE}"]


@pytest.fixture(scope="session")
def tiny_engine_cfg():
    """`path -> ModelConfig` of a tiny model for vLLM: TINY_DTYPE, eager, a short context (keywords override)."""
    from scalequest.config import ModelConfig

    def make(path, **kw):
        return ModelConfig(**{"path": str(path), "dtype": TINY_DTYPE, "max_model_len": 512, "max_num_seqs": 4,
                              "enforce_eager": True, **kw})

    return make


@pytest.fixture(scope="session")
def tiny_model_cfg(tiny_model, tiny_engine_cfg):
    return tiny_engine_cfg(tiny_model, max_model_len=2048, max_num_seqs=64)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_cfg):
    """One in-process vLLM engine over the tiny model for the whole session."""
    from scalequest.engines.vllm_engine import VLLMEngine

    engine = VLLMEngine(tiny_model_cfg)
    yield engine
    engine.close()


@pytest.fixture
def models_copy(tmp_path, tiny_model) -> Path:
    dest = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_model, dest)
    return dest


@pytest.fixture(scope="session")
def kill_vllm_under():
    """`kill(pid)`: SIGKILL vLLM's engine-core process under process `pid` (an engine actor or a Serve replica),
    as a crash or the OOM killer would; returns the killed pid."""
    import signal

    import psutil

    def kill(pid: int) -> int:
        children = psutil.Process(pid).children(recursive=True)
        cores = [c for c in children if "EngineCore" in " ".join(c.cmdline())]
        assert cores, f"no vLLM engine core under pid {pid}: {[c.cmdline() for c in children]}"
        cores[0].send_signal(signal.SIGKILL)
        return cores[0].pid

    return kill


@pytest.fixture
def no_shm_left():
    """Watches the /dev/shm/psm_* segments and sem.mp-* semaphores that a run's processes map, and fails if any
    outlives the run.

    `no_shm_left.watch(root_pid, ray_only)` starts sampling, every 0.5 s in a thread, the /dev/shm files mapped by
    the descendants of `root_pid` (only Ray worker processes and their children when `ray_only`: this test process
    also holds the session's in-process engine); `no_shm_left()` stops and checks that no psm_* / sem.mp-* file
    with one of those inodes is left. By inode (`runtime.mapped_shm_inodes`), because a live semaphore is mapped
    under a temporary, deleted name, never as its sem.mp-* name. Files other processes on the machine make (a
    parallel test run) are not this run's and are ignored.
    """
    import threading

    import psutil

    from scalequest.runtime import mapped_shm_inodes, shm_segments

    seen: set[int] = set()  # inodes of /dev/shm files the run's processes mapped
    named: set = set()  # the psm_* / sem.mp-* files among them (the watch saw vLLM's segments)
    stop = threading.Event()

    def sample(root: int, ray_only: bool) -> None:
        while not stop.is_set():
            try:
                procs = psutil.Process(root).children(recursive=True)
            except psutil.Error:
                procs = []
            if ray_only:
                tops = [p for p in procs if _cmd(p).startswith("ray::")]
                procs = tops + [c for p in tops for c in _children(p)]
            inodes = mapped_shm_inodes([p.pid for p in procs])
            seen.update(inodes)
            named.update(p for p in shm_segments() if _inode(p) in inodes)
            stop.wait(0.5)

    class Check:
        def watch(self, root_pid: int | None = None, ray_only: bool = False) -> None:
            threading.Thread(target=sample, args=(root_pid or os.getpid(), ray_only), daemon=True).start()

        def __call__(self) -> None:
            stop.set()
            assert named, "no vLLM shared-memory segment was seen: the watch did not cover the run"
            left = sorted(str(p) for p in shm_segments() if _inode(p) in seen)
            assert not left, f"shared-memory segments or semaphores left behind: {left}"

    yield Check()
    stop.set()


def _inode(path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:  # unlinked meanwhile
        return None


def _cmd(proc) -> str:
    try:
        return " ".join(proc.cmdline())
    except Exception:  # noqa: BLE001 - gone or not ours
        return ""


def _children(proc) -> list:
    try:
        return proc.children(recursive=True)
    except Exception:  # noqa: BLE001
        return []
