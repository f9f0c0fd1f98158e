"""Fixtures for training tests: question files, a tiny model with SmolLM2's real BPE tokenizer (when it is
prepared locally), and a QFT loop config over a tiny random model."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

SMOLLM2 = Path(__file__).resolve().parents[2] / "models" / "smollm2-135m-instruct"

QUESTIONS = [
    "Tom has 3 apples and buys 5 more. How many apples does he have?",
    "Find all real $x$ such that $x^2 - 5x + 6 = 0$.",
    "A train travels 60 km in 45 minutes. What is its speed in km/h?",
    "What is the remainder when $2^{10}$ is divided by 7?",
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def questions() -> list[str]:
    """Four distinct, well-formed questions (GSM8K- and MATH-like)."""
    return list(QUESTIONS)


@pytest.fixture
def jsonl_writer():
    """`write(path, rows)`: one JSON value per line."""
    return write_jsonl


@pytest.fixture
def gsm8k_file(tmp_path) -> Path:
    """GSM8K-style rows (`question`), two of them usable."""
    return write_jsonl(tmp_path / "gsm8k" / "train.jsonl",
                       [{"question": QUESTIONS[0], "answer": "#### 8"}, {"question": QUESTIONS[2], "answer": "#### 80"}])


@pytest.fixture
def math_file(tmp_path) -> Path:
    """MATH-style rows (`problem`) as Parquet, two of them usable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "math" / "train.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"problem": [QUESTIONS[1], QUESTIONS[3]], "level": ["Level 2", "Level 3"]}), path)
    return path


@pytest.fixture(scope="session")
def smollm2_tiny(tmp_path_factory) -> Path:
    """A tiny random Llama with SmolLM2's BPE tokenizer (merges across the prefix/question boundary are possible)."""
    if not (SMOLLM2 / "tokenizer_config.json").is_file():
        pytest.skip(f"SmolLM2 not prepared at {SMOLLM2} (run 'scalequest models prepare smollm2')")
    from scalequest.engines.prepare import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-smollm2-tok", tokenizer_dir=SMOLLM2)


@pytest.fixture(scope="module")
def trained_qft(tmp_path_factory, tiny_model):
    """`sft_loop` run once in this process (no Ray) on the tiny random model: 3 optimizer steps of 2 questions.

    Returns (loop config, log messages of the run).
    """
    from transformers import AutoTokenizer

    from scalequest.config import QFTConfig, RayTrainConfig
    from scalequest.train.qft import SFTLoop, qft_prompt, qft_rows, sft_loop

    tmp = tmp_path_factory.mktemp("qft")
    prefix, eos = qft_prompt("auto", None, AutoTokenizer.from_pretrained(tiny_model))
    q = QFTConfig(base_model=str(tiny_model), max_steps=3, per_device_batch=2, effective_batch=2,
                  learning_rate=1e-3, output_dir=str(tmp / "out"))
    config = SFTLoop(hparams=q.hparams(), ray=RayTrainConfig(num_workers=1), base_model=str(tiny_model),
                     output_dir=str(tmp / "out"), rows=qft_rows(QUESTIONS * 2, prefix, eos), eos=eos,
                     work_dir=str(tmp / "work"), stats_path=str(tmp / "stats"), in_process=True).model_dump()
    records = _Collect()
    logger = logging.getLogger("scalequest.train")
    old_level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        sft_loop(config)
    finally:
        logger.removeHandler(records)
        logger.setLevel(old_level)
    return config, records.messages


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def synth_run(tmp_path) -> Path:
    """A synthesis run folder as the pipeline writes it (WriteShards): ids 0..5, ids 1 and 4 rejected."""
    import pyarrow as pa

    from scalequest.pipeline.shards import WriteShards
    from scalequest.schema import output_schema

    ids, rejected = [3, 0, 1, 2, 5, 4], {1, 4}
    schema = output_schema()
    cols = {name: [None] * len(ids) for name in schema.names}
    cols.update(id=ids, generator=["g"] * len(ids), seed=ids,
                question=[f"What is {i} + {i}?" for i in ids],
                response=[f"{i} + {i} = {2 * i}. The answer is $\\boxed{{{2 * i}}}$." for i in ids],
                status=["rejected" if i in rejected else "kept" for i in ids],
                reject_stage=["select" if i in rejected else None for i in ids],
                reject_reason=["low agreement" if i in rejected else None for i in ids])
    run = tmp_path / "runs" / "tiny-20261201-000000"
    WriteShards(run)(pa.Table.from_pydict(cols, schema=schema))
    return run


class Drill:
    """The fault drill of the Ray Train tests: worker 0 SIGKILLs itself after the checkpoint of step 1 of 2
    (`train.ray.kill_worker_at_step`) and Ray Train restarts the group once (`max_failures`)."""

    overrides = ["train.ray.kill_worker_at_step=1", "train.ray.max_failures=1"]

    @staticmethod
    def assert_resumed(output_dir, steps: int = 2) -> None:
        """The job ran all its steps and its restarted workers resumed from the checkpoint of step 1."""
        from scalequest.train.loop_utils import read_summary

        summary = read_summary(str(output_dir))
        assert summary["global_step"] == steps and summary["resumed_from_step"] == 1, summary


@pytest.fixture
def drill() -> Drill:
    return Drill()
