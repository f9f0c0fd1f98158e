"""Output tokens/s of question generation, side by side in one run, on the same model, prompts and sampling:

  (a) pipeline      the pipeline's generate stage as `build_dataset` wires it: ray.data.range(N) →
                    GenerateQuestions (assigning generators itself) through `DatasetBuilder.add` (TimedStage,
                    ActorPoolStrategy), calling the shared async vLLM engine actor from `start_engines`.
                    Timed around the dataset's execution only.
  (b) bare vLLM     one `vllm.LLM.generate` over the same N prompts, same engine kwargs, same per-row
                    SamplingParams (seeds from `row_seed`, end-of-turn stops). Timed around `generate` only.
  (c) transformers  `model.generate` on the same prompts in batches of `--hf-batch` (left-padded), `do_sample=True`,
                    same temperature/top-p; bf16, batch 32 by default: its fastest shape here. Tokens counted up to
                    and including the first stop token.

(a) and (b) repeat `--repeats` times, interleaved (a, b, a, b, …) by default, and the table shows medians.

Run:  .venv/bin/python bench/generation_throughput.py [--prompts 128] [--max-tokens 128] [--hf-batch 32]
      [--repeats 3] [--config tiny] [--model models/smollm2-135m-instruct] [--out bench/results/...json]
See bench/README.md for what the numbers mean and the last measured table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "RAY_AUTH_MODE": "disabled"}

log = logging.getLogger("bench.generation_throughput")


@dataclass
class Workload:
    """What every engine generates: N copies of one prefix, one seed per row."""

    cfg: object  # SynthesisConfig with exactly one generator
    prefix: str
    stops: list[str]
    sampling: object  # scalequest.engines.base.Sampling
    seeds: list[int]

    @property
    def model(self):
        return self.cfg.models[self.cfg.generators[0].model]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/smollm2-135m-instruct", help="HF model folder (all engines).")
    p.add_argument("--config", default="tiny", help="Config whose model settings (dtype, eager, …) apply.")
    p.add_argument("--prompts", type=int, default=128, help="Prompts for the pipeline and bare vLLM.")
    p.add_argument("--max-tokens", type=int, default=128, help="max_tokens per question.")
    p.add_argument("--hf-prompts", type=int, default=None,
                   help="Prompts for transformers (default: the same --prompts; 0 = skip it).")
    # transformers' best shape measured here (bench/results/transformers_batch_curve.json): the baseline is fair
    p.add_argument("--hf-dtype", choices=["fp32", "bf16"], default="bf16", help="transformers weights dtype.")
    p.add_argument("--hf-batch", type=int, default=32, help="transformers batch size (0 = all prompts at once).")
    p.add_argument("--repeats", type=int, default=3, help="Timed runs of (a) and (b) each; medians reported.")
    p.add_argument("--max-num-seqs", type=int, default=256, help="vLLM max_num_seqs for both engines.")
    p.add_argument("--order", choices=["interleaved", "sequential"], default="interleaved",
                   help="a,b,a,b,… or all (a) then all (b).")
    p.add_argument("--gen-batch", type=int, default=None, help="Override the pipeline's generate batch size.")
    p.add_argument("--gen-actors", type=int, default=None, help="Override the generate stage's actor count.")
    p.add_argument("--gen-calls", type=int, default=None, help="Override generate.calls_per_actor (default: enough "
                   "for batch × actors × calls to fill --max-num-seqs, as the config asks).")
    p.add_argument("--ray-cpus", type=int, default=8, help="Logical CPUs for the local Ray.")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="Extra environment for both engines (repeatable), e.g. VLLM_CPU_OMP_THREADS_BIND=0-1.")
    p.add_argument("--out", default="bench/results/generation_throughput.json", help="JSON results file.")
    args = p.parse_args(argv)
    args.hf_prompts = args.prompts if args.hf_prompts is None else args.hf_prompts
    ENV.update(kv.split("=", 1) for kv in args.env)
    os.environ.update(ENV)  # before Ray or vLLM read them; Ray workers get them again through runtime_env
    return args


def load_workload(args) -> Workload:
    from scalequest.config import load_config
    from scalequest.engines.base import Sampling
    from scalequest.pipeline.build import generator_prefixes
    from scalequest.stages.generate_questions import AssignGenerators

    key = load_config(args.config).generators[0].model
    shape = {"batch_size": args.gen_batch, "concurrency": args.gen_actors, "calls_per_actor": args.gen_calls}
    cfg = load_config(args.config, [
        f"models.{key}.path={args.model}", f"models.{key}.max_num_seqs={args.max_num_seqs}",
        f"models.{key}.replicas=1", f"generators.0.sampling.max_tokens={args.max_tokens}",
        "generators.0.share=1.0", f"num_candidates={args.prompts}",
        *(f"generate.{k}={v}" for k, v in shape.items() if v is not None),
    ])
    cfg.generators = cfg.generators[:1]  # one generator, so every row gets the same prefix and engine
    if args.gen_calls is None:  # as generate.calls_per_actor asks: batch × actors × calls ≥ the engine's max_num_seqs
        gen = cfg.generate
        gen.calls_per_actor = max(gen.calls_per_actor, -(-args.max_num_seqs // (gen.batch_size * gen.concurrency)))
    g = cfg.generators[0]
    prefix, stops = generator_prefixes(cfg)[g.name]  # as build_dataset derives it
    seeds = AssignGenerators(cfg.generators, cfg.seed)({"id": list(range(args.prompts))})["seed"]
    return Workload(cfg, prefix, stops, Sampling.from_config(g.sampling, extra_stop=stops), seeds)


def pipeline_shape(cfg) -> tuple[int, int, int]:
    """(batch size, actors, calls per actor) of the generate stage, as the config (with --gen-* overrides) sets them."""
    return cfg.generate.batch_size, cfg.generate.concurrency, cfg.generate.calls_per_actor


def run_pipeline(w: Workload, engines: dict) -> dict:
    """One execution of the pipeline's front (`question_dataset`: range → GenerateQuestions);
    tokens from every row's question_tokens."""
    import ray

    from scalequest.pipeline.actors import StageLedger
    from scalequest.pipeline.build import question_dataset

    g = w.cfg.generators[0]
    ledger = StageLedger.remote()
    ds = question_dataset(w.cfg, engines, ledger, {g.name: (w.prefix, w.stops)})
    tokens = rows = rejected = 0
    t0, t0_wall = time.perf_counter(), time.time()
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        tokens += int(batch["question_tokens"].sum())
        rows += len(batch["question_tokens"])
        rejected += sum(r is not None for r in batch["reject_reason"])
    seconds = time.perf_counter() - t0
    stage = ray.get(ledger.snapshot.remote()).get("generate", {})
    ray.kill(ledger)
    window = stage.get("last_end", 0) - stage.get("first_start", 0)
    return dict(rows=rows, tokens=tokens, seconds=seconds, tok_s=tokens / seconds, rejected=rejected,
                startup_s=stage.get("first_start", t0_wall) - t0_wall,  # Ray Data start-up before batch one
                stage_window_s=window, stage_tok_s=tokens / window if window > 0 else None,
                stage_busy_s=stage.get("busy_s"), stage_batches=stage.get("batches"),
                # each generate batch's (start, end), seconds after the dataset's execution began
                batch_spans=sorted((round(a - t0_wall, 2), round(b - t0_wall, 2)) for a, b in stage.get("spans", [])))


class BareVLLM:
    """A raw in-process `vllm.LLM` with the pipeline engine's kwargs and per-row SamplingParams."""

    def __init__(self, w: Workload):
        from vllm import LLM

        from scalequest.engines.vllm_engine import _StopTokens, engine_kwargs, sampling_params

        self.llm = LLM(**engine_kwargs(w.model))
        stops = _StopTokens(self.llm.get_tokenizer())  # the engines' own stop split: identical SamplingParams
        self.prompts = [w.prefix] * len(w.seeds)
        self.params = [sampling_params(w.sampling, s, stops) for s in w.seeds]

    def run(self, n: int | None = None) -> dict:
        prompts, params = self.prompts[:n], self.params[:n]
        t0 = time.perf_counter()
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - t0
        tokens = sum(len(o.outputs[0].token_ids) for o in outs)
        return dict(rows=len(outs), tokens=tokens, seconds=seconds, tok_s=tokens / seconds)

    def close(self) -> None:
        self.llm.llm_engine.engine_core.shutdown()


def run_hf(w: Workload, n: int, dtype: str, batch: int | None = None) -> dict:
    """transformers `generate` on n prompts in batches of `batch` (default: one batch of n; left padding), timed
    around the generate calls only. A batch runs until its longest member stops, so bigger batches waste more
    steps on finished rows: `--hf-batch` finds transformers' best shape for the comparison."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(w.model.path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(
        w.model.path, dtype=torch.float32 if dtype == "fp32" else torch.bfloat16).eval()
    special = [s for s in w.stops if s in tok.all_special_tokens]
    text_stops = [s for s in w.stops if s not in special]
    stop_ids = sorted({tok.convert_tokens_to_ids(s) for s in special} | {tok.eos_token_id})
    s, batch = w.sampling, min(batch or n, n)
    kw = dict(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=0, max_new_tokens=s.max_tokens,
              eos_token_id=stop_ids, pad_token_id=tok.pad_token_id or stop_ids[0],
              **(dict(stop_strings=text_stops, tokenizer=tok) if text_stops else {}))
    torch.manual_seed(w.cfg.seed)
    tokens, seconds = 0, 0.0
    with torch.inference_mode():
        warm = tok([w.prefix], return_tensors="pt")
        model.generate(**warm, **{**kw, "max_new_tokens": 4})  # warm-up
        for start in range(0, n, batch):
            inputs = tok([w.prefix] * min(batch, n - start), return_tensors="pt", padding=True)
            t0 = time.perf_counter()
            out = model.generate(**inputs, **kw)
            seconds += time.perf_counter() - t0
            tokens += sum(_tokens_to_stop(row.tolist(), stop_ids) for row in out[:, inputs["input_ids"].shape[1]:])
    return dict(rows=n, tokens=tokens, seconds=seconds, tok_s=tokens / seconds, dtype=dtype, batch=batch,
                torch_threads=torch.get_num_threads())


def _tokens_to_stop(ids: list[int], stop_ids: list[int]) -> int:
    """Generated tokens up to and including the first stop token (vLLM counts the stop token too)."""
    for i, t in enumerate(ids):
        if t in stop_ids:
            return i + 1
    return len(ids)


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, name, CPU seconds so far) for every process in /proc."""
    tick, procs = os.sysconf("SC_CLK_TCK"), {}
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text() if d.name.isdigit() else ""
        except OSError:
            continue
        if stat:
            f = stat[stat.rindex(")") + 2:].split()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            procs[int(d.name)] = (int(f[1]), name, (int(f[11]) + int(f[12])) / tick)  # ppid, utime + stime
    return procs


def _children(procs: dict) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    return children


def _descendants(procs: dict, root: int) -> list[int]:
    children = _children(procs)
    todo, out = [root], []
    while todo:
        out.append(todo.pop())
        todo += children.get(out[-1], [])
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


DRIVER, BARE_VLLM, ACTOR_VLLM = "driver (bench / Ray Data executor)", "vLLM (bare LLM)", "vLLM (engine actor)"


def _role(pid: int, root: int, name: str, parent_role: str | None) -> str:
    """What a process below the driver is, for the CPU table: the driver itself, a vLLM process (grouped under
    the role of the process that started it), a Ray worker by its proctitle (ray::EngineActor, ray::MapWorker…),
    Ray's own daemons, or 'other'."""
    if pid == root:
        return DRIVER
    if name.startswith("VLLM::") or parent_role in (BARE_VLLM, ACTOR_VLLM):
        bare = parent_role in (DRIVER, BARE_VLLM)
        return BARE_VLLM if bare else ACTOR_VLLM
    cmd = _cmdline(pid)
    if cmd.startswith("ray::"):
        head = cmd.split()[0]
        return head.split("(")[0] if "MapWorker" in head else head
    for daemon in ("raylet", "gcs_server", "dashboard", "log_monitor", "runtime_env", "monitor.py"):
        if daemon in cmd:
            return f"ray {daemon}"
    return "other"


def roles_below(root: int) -> dict[int, tuple[str, float]]:
    """pid → (`_role`, CPU seconds so far) for `root` (this driver) and every process below it."""
    procs = _processes()
    children = _children(procs)
    out, todo = {}, [(root, None)]
    while todo:
        pid, parent_role = todo.pop()
        role = _role(pid, root, procs[pid][1], parent_role)
        out[pid] = (role, procs[pid][2])
        todo += [(c, role) for c in children.get(pid, [])]
    return out


class CpuByRole:
    """CPU seconds each role (driver, vLLM, stage actors, Ray daemons) used during a `with` block. Samples every
    `every` s in a thread, so processes that start and exit inside the block (Ray Data's stage actors) count
    too, up to their last sample."""

    def __init__(self, root: int, every: float = 0.5):
        import threading

        self.root, self.every, self.stop = root, every, threading.Event()
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, initial: bool = False) -> None:
        for pid, (role, cpu) in roles_below(self.root).items():
            self.first.setdefault(pid, cpu if initial else 0.0)
            self.last[pid] = (role, cpu)

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self._sample()

    def __enter__(self):
        self._sample(initial=True)  # the processes alive now count from here; later ones from 0
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._sample()
        self.seconds: dict[str, float] = {}
        for pid, (role, cpu) in self.last.items():
            self.seconds[role] = self.seconds.get(role, 0.0) + cpu - self.first[pid]


def owned_shm(root_pid: int) -> set[str]:
    """/dev/shm segments (vLLM's psm_*, multiprocessing sem.mp-*) mapped by `root_pid` or its descendants:
    Ray's raylet, its workers and the engines' processes all descend from this driver. Engines killed with
    their actor leave these behind."""
    names: set[str] = set()
    for pid in _descendants(_processes(), root_pid):
        names |= _mapped_shm(pid)
    return names


def _mapped_shm(pid) -> set[str]:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {tok for line in maps.splitlines() for tok in line.split()
            if tok.startswith(("/dev/shm/psm_", "/dev/shm/sem.mp-"))}


def remove_unmapped(names: set[str]) -> list[str]:
    """Unlink the segments in `names` that still exist and that no process on the machine maps any more."""
    in_use = set().union(*(_mapped_shm(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()))
    removed = []
    for name in sorted(names - in_use):
        try:
            os.unlink(name)
            removed.append(name)
        except FileNotFoundError:
            pass
    return removed


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def median_of(runs: list[dict]) -> dict:
    keys = ("rows", "tokens", "seconds", "tok_s")
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def ratio(a, b):
    return a / b if a and b else None


def print_table(results: dict) -> None:
    rows = [("pipeline (Ray Data + engine actor)", results["pipeline"]),
            ("bare vLLM LLM.generate", results["bare"])]
    if results.get("transformers"):
        hf = results["transformers"]
        rows.append((f"transformers generate {hf['dtype']}, batch {hf.get('batch')}", hf))
    print(f"\n{'engine':<38}{'prompts':>8}{'out tokens':>12}{'seconds':>10}{'tokens/s':>10}")
    for name, r in rows:
        print(f"{name:<38}{r['rows']:>8.0f}{r['tokens']:>12.0f}{r['seconds']:>10.1f}{r['tok_s']:>10.1f}")
    ra = results["ratios"]
    print(f"\npipeline / bare vLLM     = {_fmt(ra['pipeline_over_bare'])}   (target >= 0.9)")
    print(f"pipeline / transformers  = {_fmt(ra['pipeline_over_transformers'])}   (target >= 10)")
    print(f"pipeline stage window    = {_fmt(ra['stage_window_over_bare'])} x bare "
          "(first batch start → last batch end: leaves out Ray Data start-up)")
    for which in ("pipeline", "bare"):
        run = results["runs"][which][-1]
        roles = ", ".join(f"{k} {v:.1f}" for k, v in run["cpu_s_by_role"].items())
        print(f"CPU seconds by process, last {which} run ({run['seconds']:.1f} s wall, "
              f"{os.cpu_count()} cores): {roles}")
    share = results["idle_engine_cpu_share"]
    print(f"idle engine CPU while the other ran: at most {100 * share:.1f}% of a core "
          f"({'both loaded is fine' if share < 0.05 else 'it competes: rerun with --order sequential'}; "
          f"order={results['args']['order']})")


def _fmt(x):
    return "n/a" if x is None else f"{x:.2f}"


def timed_repeats(args, w: Workload, engines: dict, bare: BareVLLM):
    """Run (a) and (b) `repeats` times each, interleaved or one after the other; returns both run lists."""
    plan = (["a", "b"] * args.repeats if args.order == "interleaved"
            else ["a"] * args.repeats + ["b"] * args.repeats)
    pipe, raw = [], []
    for i, which in enumerate(plan, 1):
        time.sleep(2)  # vLLM's workers busy-poll for 1 s after their last step: let the other engine go quiet
        with CpuByRole(os.getpid()) as used:
            r = run_pipeline(w, engines) if which == "a" else bare.run()
        r["cpu_s_by_role"] = {k: round(v, 2) for k, v in sorted(used.seconds.items(), key=lambda kv: -kv[1])
                              if v >= 0.01}
        # the engine that should be doing nothing meanwhile: does it take CPU from the running one?
        idle = BARE_VLLM if which == "a" else ACTOR_VLLM
        r["idle_engine_cpu_s"] = used.seconds.get(idle, 0.0)
        (pipe if which == "a" else raw).append(r)
        log.info("run %d/%d %s: %d tokens in %.1f s = %.1f tok/s", i, len(plan),
                 "pipeline" if which == "a" else "bare", r["tokens"], r["seconds"], r["tok_s"])
    return pipe, raw


def start_vllm_engines(args, w: Workload):
    """Load both vLLM engines once and warm each with a small untimed request."""
    import ray

    from scalequest.pipeline.engine_pool import start_engines

    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, runtime_env={"env_vars": ENV})
    t0 = time.perf_counter()
    engines = start_engines(w.cfg.models, {w.cfg.generators[0].model})
    actor_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    bare = BareVLLM(w)
    bare_load = time.perf_counter() - t0
    warm = replace(w.sampling, max_tokens=8)
    engines[w.cfg.generators[0].model].generate([w.prefix] * 4, warm, w.seeds[:4])
    bare.run(4)
    return engines, bare, dict(engine_actor_s=actor_load, bare_llm_s=bare_load)


def measure_vllm(args, w: Workload):
    """Load both engines, run the timed repeats, shut everything down and remove the /dev/shm leftovers."""
    import ray

    from scalequest.pipeline.engine_pool import stop_engines

    engines, bare, shm = {}, None, set()
    try:
        engines, bare, load_s = start_vllm_engines(args, w)
        shm |= owned_shm(os.getpid())
        pipe, raw = timed_repeats(args, w, engines, bare)
    finally:
        shm |= owned_shm(os.getpid())
        if bare is not None:
            bare.close()
        stop_engines(engines)
        ray.shutdown()
        time.sleep(3)  # let the killed engine processes exit before checking who still maps what
        removed = remove_unmapped(shm)
        log.info("removed %d leftover /dev/shm segment(s) of this run: %s", len(removed), removed)
    return pipe, raw, load_s


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    load_start = load_average()
    print(f"load at start: {load_start}")
    w = load_workload(args)
    shape = pipeline_shape(w.cfg)
    in_flight = shape[0] * shape[1] * shape[2]
    print(f"pipeline generate stage: batch_size={shape[0]}, actors={shape[1]}, calls per actor={shape[2]} → at "
          f"most {in_flight} requests in flight (bare vLLM: {args.prompts}); "
          f"max_num_seqs={w.model.max_num_seqs}; order={args.order}")
    pipe, raw, load_s = measure_vllm(args, w)
    hf = run_hf(w, args.hf_prompts, args.hf_dtype, args.hf_batch) if args.hf_prompts else None
    results = summarize(args, w, shape, pipe, raw, hf, load_s, load_start)
    print_table(results)
    print(f"load at end:   {results['load_end']}")
    write_json(args.out, results)
    return results


def summarize(args, w, shape, pipe, raw, hf, load_s, load_start) -> dict:
    p, b = median_of(pipe), median_of(raw)
    window = statistics.median(r["stage_tok_s"] for r in pipe if r["stage_tok_s"])
    return dict(
        args=vars(args), machine=dict(cpus=os.cpu_count(), platform=platform.platform()),
        load_start=load_start, load_end=load_average(), model=w.model.model_dump(),
        sampling=asdict(w.sampling), prefix=w.prefix,
        pipeline_shape=dict(batch_size=shape[0], actors=shape[1], calls_per_actor=shape[2],
                            max_in_flight=shape[0] * shape[1] * shape[2]),
        engine_load_s=load_s, pipeline=p, bare=b, transformers=hf,
        # same seeds and params, so the counts should agree up to batch-dependent bf16 rounding
        token_counts=dict(pipeline=[r["tokens"] for r in pipe], bare=[r["tokens"] for r in raw]),
        runs=dict(pipeline=pipe, bare=raw),
        idle_engine_cpu_share=max(r["idle_engine_cpu_s"] / r["seconds"] for r in pipe + raw),
        ratios=dict(pipeline_over_bare=ratio(p["tok_s"], b["tok_s"]),
                    pipeline_over_transformers=ratio(p["tok_s"], hf and hf["tok_s"]),
                    stage_window_over_bare=ratio(window, b["tok_s"])),
    )


def write_json(path: str, results: dict) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":  # vLLM spawns processes: keep the guard
    main()
