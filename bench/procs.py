"""CPU seconds and peak RSS of every process below a root (this benchmark's driver), grouped by role, sampled with
psutil in a thread while a `with` block runs.

Roles: the driver itself; vLLM's own processes (`VLLM::*` and what they start); Ray workers by their proctitle
(`ray::EngineActor`, `ray::MapWorker(MapBatches(GenerateQuestions))`, `ray::SeenStore`…; a task worker takes
the name of the task it runs); Ray's daemons (raylet, gcs_server, dashboard, …); 'other'. A local Ray started by
the driver (ray.init) runs below it, so the whole run is covered.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import psutil

DRIVER, VLLM = "driver", "vLLM engine core"
_METHOD = re.compile(r"\.[A-Za-z_]\w*$")
DAEMONS = ("raylet", "gcs_server", "dashboard", "log_monitor", "runtime_env", "monitor.py")


def role_of(proc: psutil.Process, root: int) -> str:
    if proc.pid == root:
        return DRIVER
    name = proc.name()
    if name.startswith("VLLM::"):
        return VLLM
    cmd = " ".join(proc.cmdline())
    if cmd.startswith("ray::"):
        return _METHOD.sub("", cmd.split()[0])  # ray::SeenStore.first_seen → ray::SeenStore
    for parent in proc.parents():
        if parent.name().startswith("VLLM::"):
            return VLLM
    return next((f"ray {d}" for d in DAEMONS if d in cmd), "other")


@dataclass
class RoleStats:
    cpu_s: float = 0.0
    peak_rss: int = 0  # the largest RSS one process of this role reached
    pids: set[int] = field(default_factory=set)


class ProcessSampler:
    """`with ProcessSampler(os.getpid()) as s: …` then `s.roles`: role → RoleStats. CPU counts from the block's
    start for processes alive then, from their start for later ones (up to their last sample)."""

    def __init__(self, root: int, every: float = 1.0):
        self.root, self.every, self.stop = root, every, threading.Event()
        self.roles: dict[str, RoleStats] = {}
        self.cpu: dict[int, float] = {}  # pid → CPU seconds at the last sample
        self.role: dict[int, str] = {}
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.root)
        return [root, *root.children(recursive=True)]

    def sample(self, initial: bool = False) -> None:
        for proc in self._processes():
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    cpu, rss = t.user + t.system, proc.memory_info().rss
                    role = role_of(proc, self.root)
            except psutil.Error:
                continue
            before = self.cpu.get(proc.pid, cpu if initial else 0.0)
            self.cpu[proc.pid] = cpu
            stats = self.roles.setdefault(role, RoleStats())
            stats.cpu_s += max(0.0, cpu - before)
            stats.peak_rss = max(stats.peak_rss, rss)
            stats.pids.add(proc.pid)

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()

    def __enter__(self):
        self.sample(initial=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.sample()
