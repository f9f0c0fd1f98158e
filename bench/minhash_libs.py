"""MinHash-LSH near-duplicate detection of math questions: `datasketch` vs `rensa`, side by side in one run.

Corpus: MATH train `problem` + GSM8K train `question` (~15K, or a seeded sample of `--limit`), plus `--planted`
(500) near-copies of randomly chosen corpus questions, each with one light edit: change one number, drop one
word, swap two adjacent words, or append a short sentence. Which question is planted and what it copies is
written to the JSON (`planted`).

Text: `scalequest.mathcheck.text.normalize_question` (NFKC, casefold, whitespace runs -> one space); punctuation
and LaTeX are kept (`$`, `^`, `{`, `.` in 0.25 carry meaning in math). Shingles: the set of character n-grams of
that text (`--shingle char:5`, like NeMo Curator's fuzzy dedup; `word:N` for word n-grams); a text shorter than
n is one shingle.

Measured per library, libraries alternating order each repeat (`--repeats`, medians reported), single process
(rensa's Rayon pool pinned to `--threads`, default 1):
  build        signatures/s for the whole corpus: datasketch `MinHash.bulk` (default sha1 hashfunc; and with an
               xxh32 hashfunc), rensa `RMinHash.from_token_sets` (and `digest_matrix_from_token_sets`)
  insert/query per-item `insert(key, m)` / `query(m)` rates on the whole corpus, for each (bands x rows):
               datasketch's own optimum for (threshold, num_perm), rensa's default (`RMinHashDeduplicator`'s
               band choice; `RMinHashLSH` itself takes num_bands and needs num_perm % num_bands == 0), and
               `--extra-params`; rensa's bulk `insert_many`/`query_all` and a hand-rolled band table on the
               numpy signature matrix (the shape one would partition over Ray actors) as extra rows
  quality      recall on planted near-copies (original among the query's candidates; and estimated Jaccard
               >= threshold), candidate pairs among unplanted questions with estimated Jaccard >= threshold
               (verified with exact Jaccard of the shingle sets), and the exact Jaccard of pairs one library
               flags and the other does not
  memory       peak and retained RSS delta (psutil sampler, plus VmHWM reset via /proc/self/clear_refs) of the
               signatures and the index, each library in a fresh subprocess; pickled size of the index and of
               one signature, and whether an unpickled index answers the same
  determinism  signatures of the first 300 questions rebuilt in two subprocesses (other PYTHONHASHSEED, rensa
               with 2 threads) compared with the parent's
  partition    whether an index split into band groups (one object per group) returns the same candidates

Run:  .venv/bin/python bench/minhash_libs.py [--limit N] [--num-perm 128] [--threshold 0.8] [--shingle char:5]
          [--repeats 3] [--out bench/results/minhash_libs.json]
Needs `pip install datasketch rensa` (not project dependencies).
"""

from __future__ import annotations

import argparse
import os
import sys

# rensa's batch APIs use a Rayon pool; it reads RAYON_NUM_THREADS when first used, so set it before the import.
_threads = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--threads=")), None)
if _threads is None and "--threads" in sys.argv:
    _threads = sys.argv[sys.argv.index("--threads") + 1]
os.environ["RAYON_NUM_THREADS"] = _threads or os.environ.get("RAYON_NUM_THREADS_OVERRIDE", "1")

import gc
import hashlib
import json
import pickle
import platform
import random
import re
import statistics
import subprocess
import threading
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

import numpy as np
import psutil
import xxhash
from datasketch import LeanMinHash, MinHash, MinHashLSH
from datasketch.lsh import _optimal_param
from rensa import RMinHash, RMinHashLSH

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scalequest.mathcheck.text import normalize_question

DATA = ROOT.parent / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")
DS, RS = "datasketch", "rensa"
DS_SEED, RS_SEED = 1, 42  # each library's default seed
APPENDS = ["Show all your work.", "Give a short explanation.", "Answer with one number.", "Check your answer."]


# ---------------------------------------------------------------- corpus, planted near-copies, shingles

def load_corpus(limit: int | None, seed: int) -> tuple[list[str], list[str]]:
    texts, sources = [], []
    for name, field in (("math", "problem"), ("gsm8k", "question")):
        with open(DATA / name / "train.jsonl") as f:
            for line in f:
                texts.append(json.loads(line)[field])
                sources.append(name)
    if limit and limit < len(texts):
        keep = sorted(random.Random(seed).sample(range(len(texts)), limit))
        texts, sources = [texts[i] for i in keep], [sources[i] for i in keep]
    return texts, sources


def edit(text: str, kind: str, rng: random.Random) -> tuple[str, str, str]:
    """(new text, kind actually applied, what changed)."""
    words = text.split(" ")
    nums = list(re.finditer(r"\d+", text))
    if kind == "number" and nums:
        m = rng.choice(nums)
        old = m.group()
        new = old
        while new == old:
            new = str(max(0, int(old) + rng.choice([-3, -2, -1, 1, 2, 3, 7, 10])))
        return text[:m.start()] + new + text[m.end():], kind, f"{old}->{new}"
    if kind in ("number", "drop") and len(words) >= 4:
        i = rng.randrange(len(words))
        return " ".join(words[:i] + words[i + 1:]), "drop", f"drop {words[i]!r}"
    if kind == "swap" and len(words) >= 4:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words), kind, f"swap {words[i + 1]!r}<->{words[i]!r}"
    s = rng.choice(APPENDS)
    return text.rstrip() + " " + s, "append", f"append {s!r}"


def plant(texts: list[str], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed + 1)
    out = []
    for k, orig in enumerate(sorted(rng.sample(range(len(texts)), n))):
        new, kind, what = edit(texts[orig], rng.choice(["number", "drop", "swap", "append"]), rng)
        out.append({"key": len(texts) + k, "orig": orig, "edit": kind, "detail": what, "text": new})
    return out


def shingler(spec: str):
    unit, n = spec.split(":")
    n = int(n)
    if unit == "char":
        def sh(s: str) -> list[str]:
            return list({s[i:i + n] for i in range(max(1, len(s) - n + 1))})
    elif unit == "word":
        def sh(s: str) -> list[str]:
            w = s.split(" ")
            return list({" ".join(w[i:i + n]) for i in range(max(1, len(w) - n + 1))})
    else:
        raise SystemExit(f"--shingle: char:N or word:N, not {spec!r}")
    return sh


def prepare(args) -> dict:
    texts, sources = load_corpus(args.limit, args.seed)
    planted = plant(texts, min(args.planted, len(texts)), args.seed)
    allt = texts + [p["text"] for p in planted]
    sh = shingler(args.shingle)
    t = time.perf_counter()
    toks = [sh(normalize_question(x)) for x in allt]
    shingle_s = time.perf_counter() - t
    return {"texts": texts, "sources": sources, "planted": planted, "toks": toks, "n_base": len(texts),
            "shingle_s": shingle_s}


# ---------------------------------------------------------------- the two libraries behind one small interface

def xxh32(b: bytes) -> int:
    return xxhash.xxh32_intdigest(b)


def build(lib: str, toks: list[list[str]], num_perm: int, variant: str = "default"):
    if lib == DS:
        kw = {"num_perm": num_perm, "seed": DS_SEED}
        if variant == "xxh32":
            kw["hashfunc"] = xxh32
        return MinHash.bulk(([t.encode("utf-8") for t in d] for d in toks), **kw)
    if variant == "matrix":
        return RMinHash.digest_matrix_from_token_sets(toks, num_perm, RS_SEED)
    return RMinHash.from_token_sets(toks, num_perm, RS_SEED)


def sig_matrix(lib: str, sigs) -> np.ndarray:
    if lib == DS:
        return np.stack([m.hashvalues for m in sigs]).astype(np.uint32)
    return np.array([m.digest() for m in sigs], dtype=np.uint32)


def make_lsh(lib: str, b: int, r: int, num_perm: int, threshold: float):
    if lib == DS:
        return MinHashLSH(threshold=threshold, num_perm=num_perm, params=(b, r))
    if b * r != num_perm:
        raise ValueError(f"rensa RMinHashLSH bands use num_perm/num_bands rows; {b}x{r} != {num_perm}")
    return RMinHashLSH(threshold, num_perm, b)


def insert_all(lsh, sigs) -> None:
    for i, m in enumerate(sigs):
        lsh.insert(i, m)


def query_all(lsh, sigs) -> list[list[int]]:
    return [lsh.query(m) for m in sigs]


class BandTables:
    """Hand-rolled LSH on a (n, num_perm) uint32 signature matrix: one dict per band, key = the band's bytes.
    Any subset of bands (`bands`) is a partition that can live elsewhere; candidates = union over partitions."""

    def __init__(self, r: int, bands):
        self.r, self.tables = r, {i: defaultdict(list) for i in bands}

    def _keys(self, sig: np.ndarray, i: int):
        band = np.ascontiguousarray(sig[:, i * self.r:(i + 1) * self.r])
        return band.view(np.dtype((np.void, band.shape[1] * 4))).ravel()

    def insert(self, keys, sig: np.ndarray) -> None:
        for i, table in self.tables.items():
            for k, h in zip(keys, self._keys(sig, i)):
                table[h.tobytes()].append(k)

    def query(self, sig: np.ndarray) -> list[set]:
        out = [set() for _ in range(len(sig))]
        for i, table in self.tables.items():
            for q, h in enumerate(self._keys(sig, i)):
                out[q].update(table.get(h.tobytes(), ()))
        return out


# ---------------------------------------------------------------- helpers

def timed(fn, *a):
    gc.collect()
    t = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - t


def exact_j(a: list[str], b: list[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def est_j(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    if not len(pairs):
        return np.zeros(0)
    return (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1)


def cand_pairs(cands: list) -> np.ndarray:
    s = {(min(i, j), max(i, j)) for i, c in enumerate(cands) for j in c if j != i}
    return np.array(sorted(s), dtype=np.int64).reshape(-1, 2)


def jstats(js: list[float], threshold: float) -> dict:
    if not js:
        return {"n": 0}
    q = np.quantile(js, [0, 0.25, 0.5, 0.75, 1]).round(3).tolist()
    return {"n": len(js), "min_q1_median_q3_max": q, "share_exact_ge_threshold": round(float(np.mean(
        np.array(js) >= threshold)), 4), "n_exact_1.0": int(sum(j >= 1.0 for j in js))}


def med(xs):
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- subprocess children: memory/pickle, determinism

class PeakSampler:
    def __init__(self, every: float = 0.002):
        self.p, self.every, self.peak, self.stop = psutil.Process(), every, 0, threading.Event()

    def __enter__(self):
        self.peak = self.p.memory_info().rss
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.p.memory_info().rss)
            time.sleep(self.every)

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()
        self.peak = max(self.peak, self.p.memory_info().rss)


def _hwm_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def child_mem(args, lib: str, b: int, r: int) -> dict:
    d = prepare(args)
    toks = d["toks"]
    gc.collect()
    proc, mib = psutil.Process(), 1 / 2**20
    out = {"lib": lib, "params": [b, r], "n": len(toks)}
    for phase in ("signatures", "index"):
        gc.collect()
        base = proc.memory_info().rss
        reset = _hwm_reset()
        with PeakSampler() as ps:
            if phase == "signatures":
                sigs = build(lib, toks, args.num_perm)
            else:
                lsh = make_lsh(lib, b, r, args.num_perm, args.threshold)
                insert_all(lsh, sigs)
        gc.collect()
        out[phase] = {"peak_rss_delta_mib": round((ps.peak - base) * mib, 1),
                      "retained_rss_delta_mib": round((proc.memory_info().rss - base) * mib, 1),
                      "vmhwm_delta_mib": round((_hwm() - base) * mib, 1) if reset else None}
    try:
        t = time.perf_counter()
        blob = pickle.dumps(lsh, protocol=pickle.HIGHEST_PROTOCOL)
        dump_s = time.perf_counter() - t
        t = time.perf_counter()
        back = pickle.loads(blob)
        load_s = time.perf_counter() - t
        probe = range(0, len(sigs), max(1, len(sigs) // 500))
        same = all(sorted(back.query(sigs[i])) == sorted(lsh.query(sigs[i])) for i in probe)
        out["index_pickle"] = {"ok": True, "bytes": len(blob), "mib": round(len(blob) * mib, 2),
                               "dumps_s": round(dump_s, 3), "loads_s": round(load_s, 3),
                               "unpickled_answers_same": same}
    except Exception as e:  # noqa: BLE001
        out["index_pickle"] = {"ok": False, "error": repr(e)}
    one = pickle.dumps(sigs[0], protocol=pickle.HIGHEST_PROTOCOL)
    out["signature_pickle_bytes"] = len(one)
    if lib == DS:
        out["leanminhash_bytesize"] = LeanMinHash(sigs[0]).bytesize()
    out["numpy_uint32_row_bytes"] = args.num_perm * 4
    return out


def child_digest(args) -> dict:
    d = prepare(args)
    toks = d["toks"][:300]
    res = {}
    for lib in (DS, RS):
        res[lib] = hashlib.sha256(sig_matrix(lib, build(lib, toks, args.num_perm)).tobytes()).hexdigest()
    res["rensa_matrix"] = hashlib.sha256(np.array(build(RS, toks, args.num_perm, "matrix").to_rows(),
                                                  dtype=np.uint32).tobytes()).hexdigest()
    res["env"] = {"PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED"), "RAYON_NUM_THREADS":
                  os.environ.get("RAYON_NUM_THREADS")}
    return res


def run_child(args, spec: str, env_extra: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--_child", spec, "--num-perm", str(args.num_perm), "--threshold",
           str(args.threshold), "--shingle", args.shingle, "--seed", str(args.seed), "--planted", str(args.planted)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    env = {**os.environ, **(env_extra or {})}
    if env_extra and "RAYON_NUM_THREADS" in env_extra:
        env["RAYON_NUM_THREADS_OVERRIDE"] = env_extra["RAYON_NUM_THREADS"]
        cmd += ["--threads", env_extra["RAYON_NUM_THREADS"]]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    if p.returncode:
        return {"error": p.stderr[-2000:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the benchmark

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/results/minhash_libs.json")
    ap.add_argument("--limit", type=int, default=None, help="corpus questions (seeded sample); default all")
    ap.add_argument("--planted", type=int, default=500)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--shingle", default="char:5", help="char:N (default char:5) or word:N")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--extra-params", default="16x8", help="more bands x rows to run on both, comma-separated")
    ap.add_argument("--threads", default="1", help="rensa Rayon threads (RAYON_NUM_THREADS)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify-sample", type=int, default=2000, help="exact-Jaccard check of at most this many")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._child:
        if args._child == "digest":
            res = child_digest(args)
        else:
            _, lib, br = args._child.split(":")
            b, r = map(int, br.split("x"))
            res = child_mem(args, lib, b, r)
        print(json.dumps(res))
        return

    t_start = time.time()
    load0 = os.getloadavg()
    d = prepare(args)
    toks, n_base, planted = d["toks"], d["n_base"], d["planted"]
    n = len(toks)
    thr, P = args.threshold, args.num_perm
    print(f"corpus {n_base} + planted {len(planted)} = {n} questions; shingles {args.shingle}, mean "
          f"{np.mean([len(t) for t in toks]):.0f}/question; num_perm {P}, threshold {thr}", flush=True)

    ds_opt = tuple(_optimal_param(thr, P, 0.5, 0.5))
    rs_default = _rensa_default_bands(P, thr)
    try:
        RMinHashLSH(thr, P, ds_opt[0])
        rs_ds_opt = "accepted"
    except Exception as e:  # noqa: BLE001
        rs_ds_opt = f"rejected: {e}"
    configs = [ds_opt, (rs_default, P // rs_default)]
    for s in filter(None, args.extra_params.split(",")):
        b, r = map(int, s.lower().split("x"))
        configs.append((b, r))
    configs = list(dict.fromkeys(configs))
    cfg_name = {c: f"{c[0]}x{c[1]}" for c in configs}
    runs_for = {c: [lib for lib in (DS, RS) if lib == DS or c[0] * c[1] == P] for c in configs}
    print("LSH bands x rows: datasketch optimum", cfg_name[ds_opt], "| rensa default", f"{rs_default}x{P // rs_default}",
          "| rensa with", cfg_name[ds_opt], "->", rs_ds_opt, "| runs:", {cfg_name[c]: v for c, v in runs_for.items()},
          flush=True)

    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    sigs_keep, cands_keep = {}, {}
    for rep in range(args.repeats):
        for lib in ((DS, RS) if rep % 2 == 0 else (RS, DS)):
            sigs, s = timed(build, lib, toks, P)
            times["build (default API)"][lib].append(s)
            if lib == DS:
                _, s = timed(build, lib, toks, P, "xxh32")
                times["build, DS hashfunc=xxh32 | RS digest matrix"][lib].append(s)
            else:
                _, s = timed(build, lib, toks, P, "matrix")
                times["build, DS hashfunc=xxh32 | RS digest matrix"][lib].append(s)
            sigs_keep[lib] = sigs
            for c in configs:
                if lib not in runs_for[c]:
                    continue
                lsh = make_lsh(lib, *c, P, thr)
                _, s = timed(insert_all, lsh, sigs)
                times[f"insert per-item {cfg_name[c]}"][lib].append(s)
                cands, s = timed(query_all, lsh, sigs)
                times[f"query per-item {cfg_name[c]}"][lib].append(s)
                if rep == 0:
                    cands_keep[(lib, c)] = cands
                if lib == RS:
                    lsh2 = make_lsh(lib, *c, P, thr)
                    _, s = timed(lsh2.insert_many, sigs)
                    times[f"insert bulk {cfg_name[c]} (RS insert_many)"][lib].append(s)
                    got, s = timed(lsh2.query_all, sigs)
                    times[f"query bulk {cfg_name[c]} (RS query_all)"][lib].append(s)
                    if rep == 0:
                        assert [sorted(x) for x in got] == [sorted(x) for x in cands], "rensa bulk != per-item"
                del lsh
            # hand-rolled band tables on each library's numpy signature matrix, first forced config
            c = configs[1]
            sig, s_conv = timed(sig_matrix, lib, sigs)
            times["signatures -> numpy matrix"][lib].append(s_conv)
            bt = BandTables(c[1], range(c[0]))
            _, s = timed(bt.insert, range(n), sig)
            times[f"insert BandTables {cfg_name[c]} (numpy sigs)"][lib].append(s)
            got, s = timed(bt.query, sig)
            times[f"query BandTables {cfg_name[c]} (numpy sigs)"][lib].append(s)
            if rep == 0:
                ref = cands_keep[(lib, c)]
                cands_keep[(lib, "bandtables")] = sum(set(g) != set(x) for g, x in zip(got, ref))
            del sigs, sig, bt, got
            gc.collect()
        print(f"repeat {rep + 1}/{args.repeats} done ({time.time() - t_start:.0f}s)", flush=True)

    # rates (questions/s): every metric processes all n questions
    rates = {"shingling (shared, questions/s)": {"both": round(n / d["shingle_s"])}}
    for metric, per in times.items():
        row = {}
        for lib in (DS, RS):
            if per.get(lib):
                row[lib] = {"median_qps": round(n / med(per[lib])), "median_s": round(med(per[lib]), 3),
                            "runs_s": [round(x, 3) for x in per[lib]]}
        if DS in row and RS in row:
            row["ratio_rensa_over_datasketch"] = round(row[RS]["median_qps"] / row[DS]["median_qps"], 2)
        rates[metric] = row

    # quality
    mats = {lib: sig_matrix(lib, sigs_keep[lib]) for lib in (DS, RS)}
    jac_check = _library_jaccard_check(sigs_keep, mats)
    porig = np.array([[p["key"], p["orig"]] for p in planted], dtype=np.int64).reshape(-1, 2)
    pexact = [exact_j(toks[k], toks[o]) for k, o in porig]
    for p, j in zip(planted, pexact):
        p["exact_j"] = round(j, 4)
    quality, flagged = {}, {}
    for c in configs:
        for lib in runs_for[c]:
            cands = cands_keep[(lib, c)]
            pairs = cand_pairs(cands)
            ej = est_j(mats[lib], pairs)
            flag = pairs[ej >= thr]
            flagged[(lib, c)] = {tuple(x) for x in flag.tolist()}
            pest = est_j(mats[lib], porig)
            hit = np.array([o in set(cands[k]) for k, o in porig])
            ok_exact = np.array(pexact) >= thr
            unpl = flag[(flag[:, 0] < n_base) & (flag[:, 1] < n_base)]
            rng = random.Random(args.seed)
            sample = unpl.tolist() if len(unpl) <= args.verify_sample else rng.sample(unpl.tolist(), args.verify_sample)
            by_edit = {}
            for kind in sorted({p["edit"] for p in planted}):
                m = np.array([p["edit"] == kind for p in planted])
                by_edit[kind] = {"n": int(m.sum()), "recall_lsh_and_est": round(float((hit & (pest >= thr))[m].mean()), 4),
                                 "median_exact_j": round(float(np.median(np.array(pexact)[m])), 3)}
            quality[f"{cfg_name[c]} {lib}"] = {
                "candidate_pairs": len(pairs), "pairs_est_ge_threshold": len(flag),
                "planted_recall_lsh": round(float(hit.mean()), 4),
                "planted_recall_lsh_and_est_ge_threshold": round(float((hit & (pest >= thr)).mean()), 4),
                "planted_share_est_ge_threshold": round(float((pest >= thr).mean()), 4),
                "planted_with_exact_ge_threshold": int(ok_exact.sum()),
                "recall_among_exact_ge_threshold": round(float((hit & (pest >= thr))[ok_exact].mean()), 4)
                if ok_exact.any() else None,
                "planted_by_edit": by_edit,
                "unplanted_pairs_est_ge_threshold": len(unpl),
                "unplanted_verified": jstats([exact_j(toks[i], toks[j]) for i, j in sample], thr),
                "unplanted_cross_source": int(sum(d["sources"][i] != d["sources"][j] for i, j in unpl.tolist())),
            }
            for p, h, e in zip(planted, hit, pest):
                p.setdefault("found", {})[f"{cfg_name[c]} {lib}"] = bool(h and e >= thr)

    # agreement: pairs one library flags (LSH candidate + est >= threshold) and the other not, same b x r
    agreement, union_true = {}, set()
    for c in configs:
        if len(runs_for[c]) < 2:
            continue
        a, b = flagged[(DS, c)], flagged[(RS, c)]
        only_ds, only_rs = sorted(a - b), sorted(b - a)
        agreement[cfg_name[c]] = {
            "both": len(a & b), "only_datasketch": len(only_ds), "only_rensa": len(only_rs),
            "only_datasketch_exact": jstats([exact_j(toks[i], toks[j]) for i, j in only_ds], thr),
            "only_rensa_exact": jstats([exact_j(toks[i], toks[j]) for i, j in only_rs], thr),
            "only_datasketch_examples": [_ex(toks, d, planted, i, j, n_base) for i, j in only_ds[:3]],
            "only_rensa_examples": [_ex(toks, d, planted, i, j, n_base) for i, j in only_rs[:3]]}
    all_flag = set().union(*flagged.values())
    union_true = {pq for pq in all_flag if exact_j(toks[pq[0]], toks[pq[1]]) >= thr}
    for key, fl in flagged.items():
        name = f"{cfg_name[key[1]]} {key[0]}"
        quality[name]["share_of_union_true_pairs"] = round(len(fl & union_true) / max(1, len(union_true)), 4)

    # band partitions: datasketch with sliced LeanMinHash per group; hand-rolled tables (above) for rensa
    partition = _partition_check(sigs_keep[DS], cands_keep, configs[1], P, thr, n)
    partition["bandtables_vs_library_mismatched_queries"] = {
        lib: cands_keep[(lib, "bandtables")] for lib in (DS, RS)}

    print("memory/pickle children ...", flush=True)
    memory = {f"{cfg_name[c]} {lib}": run_child(args, f"mem:{lib}:{cfg_name[c]}")
              for c in (configs[0], configs[1]) for lib in runs_for[c]}
    print("determinism children ...", flush=True)
    here = child_digest(args)
    det = {"parent": here,
           "child_hashseed0_threads1": run_child(args, "digest", {"PYTHONHASHSEED": "0", "RAYON_NUM_THREADS": "1"}),
           "child_hashseed987_threads2": run_child(args, "digest", {"PYTHONHASHSEED": "987", "RAYON_NUM_THREADS": "2"})}
    det["identical"] = {k: all(det[c].get(k) == here[k] for c in det if c != "parent")
                        for k in (DS, RS, "rensa_matrix")}

    out = {
        "meta": {"datasketch": version("datasketch"), "rensa": version("rensa"), "rensa_algorithm_version":
                 RMinHash.ALGORITHM_VERSION, "numpy": np.__version__, "python": platform.python_version(),
                 "cpus": os.cpu_count(), "rensa_threads": os.environ["RAYON_NUM_THREADS"],
                 "loadavg_start_end": [load0, os.getloadavg()], "wall_s": None, "args": vars(args),
                 "corpus": {"math_train": d["sources"].count("math"), "gsm8k_train": d["sources"].count("gsm8k"),
                            "planted": len(planted), "total": n,
                            "mean_shingles": round(float(np.mean([len(t) for t in toks])), 1)},
                 "normalization": "scalequest.mathcheck.text.normalize_question: NFKC, casefold, whitespace runs "
                                  "-> one space, strip; punctuation/LaTeX kept",
                 "seeds": {"datasketch": DS_SEED, "rensa": RS_SEED, "corpus": args.seed},
                 "rates_note": "questions/s over the whole corpus (n); build includes datasketch's str->bytes "
                               "encode (its hashfunc needs bytes); shingling is shared and timed once"},
        "lsh_params": {"datasketch_optimum": cfg_name[ds_opt], "rensa_default": f"{rs_default}x{P // rs_default}",
                       "rensa_default_how": "RMinHashLSH(threshold, num_perm, num_bands) has no optimizer; "
                                            "RMinHashDeduplicator picks num_bands by threshold; "
                                            "inferred here by matching its decisions on synthetic J=0.9 pairs",
                       f"rensa_with_{cfg_name[ds_opt]}": rs_ds_opt, "configs_run": {cfg_name[c]: runs_for[c]
                                                                                   for c in configs}},
        "rates": rates, "library_jaccard_equals_slot_agreement": jac_check, "quality": quality,
        "agreement": agreement, "union_true_pairs": len(union_true), "band_partition": partition,
        "memory_pickle": memory, "determinism": det, "planted": planted}
    out["meta"]["wall_s"] = round(time.time() - t_start, 1)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    report(out)
    print(f"\nwrote {path} ({out['meta']['wall_s']}s)")


def _rensa_default_bands(P: int, thr: float) -> int:
    """The band count RMinHashDeduplicator picks when num_bands is not given (RMinHashLSH has no default):
    the count whose duplicate decisions equal the default's on 300 synthetic pairs with Jaccard 0.9."""
    from rensa import RMinHashDeduplicator

    pairs = []
    for k in range(300):
        base = [f"{k}_{i}" for i in range(190)]
        pairs.append(RMinHash.from_token_sets([base[:180], base[:171] + base[180:]], P, RS_SEED))

    def decisions(nb):
        out = []
        for a, b in pairs:
            dd = RMinHashDeduplicator(thr, P, True, nb) if nb else RMinHashDeduplicator(thr, P, True)
            dd.add("a", a)
            out.append(dd.is_duplicate("b", b))
        return out
    base = decisions(None)
    for nb in (1, 2, 4, 8, 16, 32, 64, 128):
        if P % nb == 0 and decisions(nb) == base:
            return nb
    raise RuntimeError("could not infer rensa's default band count")


def _library_jaccard_check(sigs_keep, mats) -> dict:
    pairs = np.array([[i, i + 1] for i in range(min(400, len(mats[DS]) - 1))])
    out = {}
    for lib in (DS, RS):
        lj = np.array([sigs_keep[lib][i].jaccard(sigs_keep[lib][j]) for i, j in pairs])
        out[lib] = bool(np.allclose(lj, est_j(mats[lib], pairs)))
    return out


def _ex(toks, d, planted, i, j, n_base) -> dict:
    def text(k):
        return d["texts"][k] if k < n_base else planted[k - n_base]["text"]
    return {"pair": [i, j], "exact_j": round(exact_j(toks[i], toks[j]), 3), "a": text(i)[:160], "b": text(j)[:160]}


def _partition_check(ds_sigs, cands_keep, c, P, thr, n) -> dict:
    b, r = c
    groups = [list(range(b))[g::2] for g in range(2)]  # 2 groups, interleaved bands
    subs = []
    for bands in groups:
        # one MinHashLSH per group over the concatenated slices of its bands; num_perm = len(bands) * r
        lsh = MinHashLSH(num_perm=len(bands) * r, params=(len(bands), r))
        for k, m in enumerate(ds_sigs):
            hv = np.concatenate([m.hashvalues[i * r:(i + 1) * r] for i in bands])
            lsh.insert(k, LeanMinHash(seed=m.seed, hashvalues=hv, scheme=m.scheme))
        subs.append((bands, lsh))
    ref = cands_keep[(DS, c)]
    bad = 0
    for k, m in enumerate(ds_sigs):
        got = set()
        for bands, lsh in subs:
            hv = np.concatenate([m.hashvalues[i * r:(i + 1) * r] for i in bands])
            got.update(lsh.query(LeanMinHash(seed=m.seed, hashvalues=hv, scheme=m.scheme)))
        bad += got != set(ref[k])
    return {"config": f"{b}x{r}", "groups": groups,
            "datasketch_sliced_leanminhash_union_mismatched_queries": bad, "queries": n}


def report(out: dict) -> None:
    m = out["meta"]
    print(f"\ndatasketch {m['datasketch']}  rensa {m['rensa']} (algorithm v{m['rensa_algorithm_version']})  "
          f"corpus {m['corpus']}  rensa threads {m['rensa_threads']}  load {m['loadavg_start_end']}")
    print(f"LSH: {out['lsh_params']}")
    w = 46
    print(f"\n{'rate (questions/s, median of repeats)':<{w}} {'datasketch':>11} {'rensa':>11} {'rensa/ds':>9}")
    for metric, row in out["rates"].items():
        if "both" in row:
            print(f"{metric:<{w}} {row['both']:>11} {row['both']:>11}")
            continue
        ds, rs = row.get(DS, {}).get("median_qps", "-"), row.get(RS, {}).get("median_qps", "-")
        print(f"{metric:<{w}} {ds:>11} {rs:>11} {row.get('ratio_rensa_over_datasketch', '-'):>9}")
    print(f"\n{'quality':<16} {'cand.pairs':>10} {'est>=t':>7} {'recall':>7} {'rec(est)':>8} {'rec|J>=t':>8} "
          f"{'unpl>=t':>7} {'unpl exact>=t':>13} {'of union':>8}")
    for name, q in out["quality"].items():
        v = q["unplanted_verified"]
        print(f"{name:<16} {q['candidate_pairs']:>10} {q['pairs_est_ge_threshold']:>7} {q['planted_recall_lsh']:>7} "
              f"{q['planted_recall_lsh_and_est_ge_threshold']:>8} {q['recall_among_exact_ge_threshold']!s:>8} "
              f"{q['unplanted_pairs_est_ge_threshold']:>7} {v.get('share_exact_ge_threshold', '-')!s:>13} "
              f"{q['share_of_union_true_pairs']:>8}")
    for cfg, a in out["agreement"].items():
        print(f"agreement {cfg}: both {a['both']}, only ds {a['only_datasketch']} exact "
              f"{a['only_datasketch_exact'].get('min_q1_median_q3_max')}, only rensa {a['only_rensa']} exact "
              f"{a['only_rensa_exact'].get('min_q1_median_q3_max')}")
    print(f"band partition: {out['band_partition']}")
    for name, mm in out["memory_pickle"].items():
        if "error" in mm:
            print(f"memory {name}: ERROR {mm['error'][-300:]}")
            continue
        print(f"memory {name}: sigs {mm['signatures']}  index {mm['index']}  pickle {mm['index_pickle']}  "
              f"1 sig pickled {mm['signature_pickle_bytes']} B")
    print(f"determinism identical across processes: {out['determinism']['identical']}")


if __name__ == "__main__":
    main()
