"""Fixtures of the pipeline tests: the overrides of a fast run on the tiny random model, and a loopback S3 server
for the run folder on object storage."""

from __future__ import annotations

import json
import string

import pytest

STOPS = list(string.ascii_letters) + ["\ufffd"]  # a random model only ends a "question" on these


@pytest.fixture(scope="session")
def random_model_run(tiny_llm, tiny_scorer_model):
    """`(out, n, seed, response_tokens) -> overrides` of a run on the tiny random model (`run_overrides`)."""
    return lambda out, n, seed, response_tokens: run_overrides(tiny_llm, tiny_scorer_model, out, n, seed,
                                                               response_tokens)


def run_overrides(tiny_llm: list[str], scorer, out, n: int, seed: int, response_tokens: int) -> list[str]:
    """Overrides for a run of `n` candidates on the tiny random model into `out`: every stage that needs no real
    language off, difficulty on the tiny scorer (easiest half dropped), blocks of 8 ids through generate, difficulty
    and responses (so a run writes several shards)."""
    return [*tiny_llm, f"num_candidates={n}", f"output.dir={out}", f"seed={seed}", "generators.0.hint=\"\"",
            f"generators.0.sampling.stop={json.dumps(STOPS)}", "generators.0.sampling.max_tokens=16",
            "language.enabled=false", "question_type.enabled=false", "solvability.enabled=false", "responses.n=2",
            f"responses.sampling.max_tokens={response_tokens}", "responses.force_answer=false", "ray.num_cpus=8",
            "generate.batch_size=8", "difficulty.batch_size=8", "responses.batch_size=8",
            f"difficulty.model_path={scorer}", "difficulty.drop_easiest_share=0.5"]

SECRET = "not-a-real-secret-123"  # fake credentials: tests check they reach no log and no file
ACCESS_KEY = "AKIASCALEQUESTTEST01"


@pytest.fixture(scope="module")
def s3_server():
    """A loopback S3 (moto in server mode) with bucket `runs`; the AWS variables point at it for the module.
    Yields (endpoint URL, the secret key, the access key id)."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url}.items():
            mp.setenv(key, value)
        pafs.S3FileSystem(endpoint_override=url, allow_bucket_creation=True).create_dir("runs")
        try:
            yield url, SECRET, ACCESS_KEY
        finally:
            server.stop()
