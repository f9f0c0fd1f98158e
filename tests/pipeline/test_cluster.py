"""The tiny pipeline on a two-node Ray brought up on this machine (`ray.cluster_utils.Cluster`): the engine actor
lands on the node that has the `engine` resource (`models.<name>.resources`), the stage actors elsewhere, the output
in one shared folder; where each actor ran is read back from Ray's state API."""

import json

import pyarrow.parquet as pq
import pytest

from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.pipeline.run import run_synthesis


@pytest.fixture
def two_nodes():
    """A head node (6 CPUs, stage actors and tasks) and an engine node (1 CPU, resource `engine`): the engine fills
    the engine node, so nothing else fits there. Shut down (and its address file removed) afterwards."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 6})
    engine_node = cluster.add_node(num_cpus=1, resources={"engine": 1})
    cluster.wait_for_nodes()
    try:
        yield cluster, engine_node
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_engine_runs_on_the_engine_node_and_stages_elsewhere(two_nodes, tiny_llm, tmp_path):
    import ray
    from ray.util.state import list_actors

    cluster, engine_node = two_nodes
    n = 16
    cfg = load_config("tiny", [
        *tiny_llm, f"num_candidates={n}", f"output.dir={tmp_path}", f"ray.address={cluster.address}",
        "models.smollm2.resources={engine: 1}", "generators.0.sampling.max_tokens=8", "language.enabled=false",
        "question_type.enabled=false", "solvability.enabled=false", "responses.n=2",
        "responses.sampling.max_tokens=8"])
    run_dir = run_synthesis(cfg)
    ids = pq.read_table(run_dir / "data", columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == list(range(n))
    assert json.loads((run_dir / "summary.json").read_text())["candidates"] == n

    ray.init(address=cluster.address)
    actors = list_actors(limit=1000, raise_on_missing_output=False)
    engines = [a for a in actors if a.class_name == "EngineActor"]
    stages = [a for a in actors if a.class_name.startswith("MapWorker")]
    assert engines and {a.node_id for a in engines} == {engine_node.node_id}
    assert stages and engine_node.node_id not in {a.node_id for a in stages}
    assert {a.node_id for a in stages} == {cluster.head_node.node_id}


@pytest.mark.ray
def test_placement_on_a_resource_this_ray_lacks_fails_before_the_run(tiny_llm, tmp_path):
    cfg = load_config("tiny", [*tiny_llm, f"output.dir={tmp_path}", "models.smollm2.resources={engine: 1}"])
    with pytest.raises(ConfigError, match=r"models\.smollm2\.resources: this Ray has 0 of resource 'engine'"):
        run_synthesis(cfg)
