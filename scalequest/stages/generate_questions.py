"""Assign each candidate a generator by share, then sample one question per row from the generator's bare
pre-query prefix, stopping at end-of-turn.

  AssignGenerators   in: id                          out: + generator, seed
  GenerateQuestions  in: id, generator, seed         out: + question, question_tokens, reject_stage, reject_reason
                     (given `assign`, it takes rows with only an id and assigns them itself: the pipeline does
                     that, so no Ray Data task per block runs just to add two columns)
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from scalequest.engines.base import Sampling
from scalequest.stages.base import Rejects, column, require

STAGE = "generate"
_GOLDEN = 0.6180339887498949


def row_seed(run_seed: int, row_id: int, salt: str = "") -> int:
    """A 31-bit seed from (run seed, row id, salt): reruns make the same rows, rows differ from each other."""
    digest = hashlib.blake2b(f"{run_seed}:{row_id}:{salt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def generator_prefixes(generators, formatters) -> dict[str, tuple[str, list[str]]]:
    """Generator name → (pre-query prefix + hint, end-of-turn stops); `formatters`: model key → ChatFormatter."""
    prefixes = {}
    for g in generators:
        prefix, stops = formatters[g.model].prefix(g.template, g.prefix)
        prefixes[g.name] = (prefix + g.hint, stops)
    return prefixes


class AssignGenerators:
    """Give each row a generator so that shares hold over any run length (golden-ratio stratification by id)."""

    def __init__(self, generators, run_seed: int):
        total = sum(g.share for g in generators)
        self.names = [g.name for g in generators]
        self.cuts, acc = [], 0.0
        for g in generators:
            acc += g.share / total
            self.cuts.append(acc)
        self.run_seed = run_seed

    def pick(self, row_id: int) -> str:
        u = (row_id * _GOLDEN + (self.run_seed % 997) * 0.001) % 1.0
        return next((n for n, c in zip(self.names, self.cuts) if u < c), self.names[-1])

    def __call__(self, batch: dict) -> dict:
        require("AssignGenerators", batch, ["id"])
        ids = [int(i) for i in column(batch, "id")]
        return {
            "id": ids,
            "generator": [self.pick(i) for i in ids],
            "seed": [row_seed(self.run_seed, i) for i in ids],
        }


class GenerateQuestions:
    """Sample one question per row from its generator's pre-query prefix.

    `engines` maps generator name → Engine; `prefixes` maps generator name → (prefix, end-of-turn stops);
    `samplings` maps generator name → SamplingConfig; `assign` (an AssignGenerators) gives rows that come with
    only an id their generator and seed. A question that is empty or never reaches end-of-turn within max_tokens is
    rejected with that reason.
    """

    def __init__(self, engines: dict, prefixes: dict, samplings: dict, assign: AssignGenerators | None = None):
        self.engines, self.prefixes, self.assign = engines, prefixes, assign
        self.samplings = {
            name: Sampling.from_config(cfg, extra_stop=prefixes[name][1]) for name, cfg in samplings.items()
        }

    def __call__(self, batch: dict) -> dict:
        if self.assign is not None and "generator" not in batch:
            batch = {**batch, **self.assign(batch)}
        n = require("GenerateQuestions", batch, ["id", "generator", "seed"])
        gens, seeds = column(batch, "generator"), column(batch, "seed")
        rejects = Rejects(batch, n)
        questions, tokens = [None] * n, [0] * n
        unknown = sorted(set(gens) - set(self.engines))
        if unknown:
            raise ValueError(f"GenerateQuestions: no engine for generator(s) {unknown}; known: {sorted(self.engines)}")
        groups = {name: [i for i in rejects.kept() if gens[i] == name] for name in dict.fromkeys(gens)}
        groups = {name: rows for name, rows in groups.items() if rows}

        def sample(name):
            rows = groups[name]
            prompts = [self.prefixes[name][0]] * len(rows)
            return self.engines[name].generate(prompts, self.samplings[name], [seeds[i] for i in rows])

        # generators on different engines work at the same time
        with ThreadPoolExecutor(max_workers=max(1, len(groups))) as pool:
            results = dict(zip(groups, pool.map(sample, groups)))
        for name, rows in groups.items():
            for i, out in zip(rows, results[name]):
                g = out[0]
                questions[i], tokens[i] = g.text.strip(), g.num_tokens
                if g.finish_reason == "error":
                    rejects.reject(i, STAGE, f"generation error: {g.error}")
                elif g.finish_reason == "length":
                    rejects.reject(i, STAGE, f"no end-of-turn within {self.samplings[name].max_tokens} tokens")
                elif not questions[i]:
                    rejects.reject(i, STAGE, "empty question")
        out = {k: column(batch, k) for k in batch}
        out.update(question=questions, question_tokens=tokens, **rejects.columns())
        return out
