"""Per-step trace of vLLM's engine core and worker, for benchmarks only (`bench/vllm_steps.py` puts this folder on
PYTHONPATH of every process it starts, so Ray workers and vLLM's own subprocesses load it at start-up).

It wraps two vLLM 0.32 methods when their modules are imported, and appends one JSON line per call:
  core-<pid>.jsonl    EngineCore.step: [start, wall s, scheduled tokens, new requests]   (steps that ran the model)
  worker-<pid>.jsonl  WorkerProc._execute_worker_rpc: [start, wall s, thread CPU s, method]
into $SQ_VLLM_TRACE_DIR. A vLLM that renames them is left untraced (a warning on stderr), never broken.
"""

import importlib.abc
import importlib.util
import json
import os
import sys
import time

_DIR = os.environ.get("SQ_VLLM_TRACE_DIR")


def _writer(obj, attr, prefix):
    f = getattr(obj, attr, None)
    if f is None:
        os.makedirs(_DIR, exist_ok=True)
        f = open(f"{_DIR}/{prefix}-{os.getpid()}.jsonl", "a", buffering=1)  # line-buffered: vLLM's exit is a kill
        setattr(obj, attr, f)
    return f


def _trace_core(mod):
    orig = mod.EngineCore.step

    def step(self):
        sched = self.scheduler
        if not getattr(sched, "_sq_traced", False):
            schedule = sched.schedule

            def traced_schedule(*a, **k):
                out = schedule(*a, **k)
                self._sq_last = (out.total_num_scheduled_tokens, len(out.scheduled_new_reqs))
                return out
            sched.schedule, sched._sq_traced = traced_schedule, True
        t0 = time.perf_counter()
        out = orig(self)
        if out[1]:
            tokens, new = getattr(self, "_sq_last", (0, 0))
            _writer(self, "_sq_log", "core").write(json.dumps([t0, time.perf_counter() - t0, tokens, new]) + "\n")
        return out
    mod.EngineCore.step = step


def _trace_worker(mod):
    orig = mod.WorkerProc._execute_worker_rpc

    def execute(self, request):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return orig(self, request)
        finally:
            method = request[0] if isinstance(request[0], str) else "fn"
            line = [t0, time.perf_counter() - t0, time.thread_time() - c0, method]
            _writer(self, "_sq_log", "worker").write(json.dumps(line) + "\n")
    mod.WorkerProc._execute_worker_rpc = execute


_HOOKS = {"vllm.v1.engine.core": _trace_core, "vllm.v1.executor.multiproc_executor": _trace_worker}


class _AfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        hook = _HOOKS.get(name)
        if hook is None:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        exec_module = spec.loader.exec_module

        def traced_exec(module):
            exec_module(module)
            try:
                hook(module)
            except AttributeError as exc:
                print(f"bench/vllm_trace: {name} not traced ({exc})", file=sys.stderr)
        spec.loader.exec_module = traced_exec
        return spec


if _DIR:
    sys.meta_path.insert(0, _AfterImport())
