"""The Ray cluster launcher specs, checked without a cloud or SSH: `cluster.yaml` (AWS) and `cluster-local.yaml`
(machines you have) pass Ray's own launcher schema (`prepare_config` + `validate_config`, what `ray up` runs
first), name only files the repo has, and cluster.yaml's node types hold what paper.yaml asks for."""

import re
from pathlib import Path

import pytest
import yaml

from scalequest.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SPECS = ("cluster.yaml", "cluster-local.yaml")


def spec(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", SPECS)
def test_launcher_spec_passes_rays_schema_and_names_only_repo_files(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    doc = spec(name)
    validate_config(prepare_config(doc))
    commands = " ".join(doc["setup_commands"] + doc["head_start_ray_commands"] + doc["worker_start_ray_commands"])
    files = re.findall(r"\b((?:scripts|ray_jobs)/[\w./-]+)", commands + " ".join(doc.get("file_mounts", {})))
    assert "scripts/setup.sh" in files
    assert all((ROOT / f).exists() for f in files), [f for f in files if not (ROOT / f).exists()]
    assert list(doc["file_mounts"].values()) == ["."]  # the project goes to every node
    # Ray runs from the project's environment on every node, so a job's `python` is ScaleQuest's
    for cmd in doc["head_start_ray_commands"] + doc["worker_start_ray_commands"]:
        assert "activate" in cmd and "ray start" in cmd
    header = (ROOT / name).read_text().split("\n\n")[0]
    assert "ray_jobs/runtime_env.yaml" in header and "root=" in header  # the submit line users copy


def test_a_broken_spec_is_refused_by_the_same_check():
    from ray.autoscaler._private.util import prepare_config, validate_config

    doc = spec("cluster.yaml")
    doc["available_node_types"]["gpu_worker"]["max_workers"] = "eight"
    with pytest.raises(Exception, match="'eight' is not of type 'integer'"):
        validate_config(prepare_config(doc))


def test_cluster_yaml_node_types_hold_what_paper_yaml_asks_for():
    """Each engine replica and each GPU stage actor fits one GPU worker; all of them fit the workers the spec may
    start; the CPUs the pipeline holds (cpu_reservation) fit the head plus those workers; Serve's LLM replicas at
    their max fit too."""
    from scalequest.pipeline.build import cpu_reservation
    from scalequest.pipeline.plan import stage_plan, used_models

    doc, cfg = spec("cluster.yaml"), load_config("paper")
    types = doc["available_node_types"]
    head, worker = types[doc["head_node_type"]], types["gpu_worker"]
    per_node, workers = worker["resources"], worker["max_workers"]
    assert workers <= doc["max_workers"]

    demands = [(f"models.{m}", cfg.models[m].num_gpus, cfg.models[m].num_cpus, cfg.models[m].replicas)
               for m in used_models(cfg)]
    demands += [(s.name, s.num_gpus, s.num_cpus, s.actors) for s in stage_plan(cfg) if s.num_gpus]
    for key, gpus, cpus, _ in demands:
        assert gpus <= per_node["GPU"] and cpus <= per_node["CPU"], f"{key}: one replica needs {gpus} GPUs, {cpus} CPUs"
    gpus_needed = sum(gpus * count for _, gpus, _, count in demands)
    assert gpus_needed <= workers * per_node["GPU"], f"{gpus_needed} GPUs needed, {workers} × {per_node['GPU']} there"
    assert sum(cpu_reservation(cfg).values()) <= head["resources"]["CPU"] + workers * per_node["CPU"]
    serve_gpus = sum(cfg.models[m].num_gpus * cfg.serve.llm[m].autoscaling.max_replicas for m in cfg.serve.llm)
    assert serve_gpus <= workers * per_node["GPU"]


def test_a_tensor_parallel_engine_reserves_one_gpu_bundle_per_worker_in_the_pipeline_and_in_serve():
    from scalequest.engines.vllm_engine import engine_kwargs
    from scalequest.errors import ConfigError
    from scalequest.pipeline.plan import engine_bundles
    from scalequest.serve.app import build_app

    over = ["models.qwen2-math.tensor_parallel_size=2", "models.qwen2-math.num_gpus=2",
            "models.qwen2-math.resources={engine: 1}"]
    cfg = load_config("paper", over)
    qwen = cfg.models["qwen2-math"]
    bundles = engine_bundles(qwen)
    assert bundles == [{"CPU": qwen.num_cpus, "GPU": 1.0, "engine": 1.0}, {"GPU": 1.0}]
    assert sum(b["GPU"] for b in bundles) == qwen.num_gpus == qwen.tensor_parallel_size
    assert engine_bundles(cfg.models["qgen-qwen2"]) is None  # one GPU: a plain actor reservation
    assert engine_kwargs(qwen)["distributed_executor_backend"] == "ray"  # vLLM's workers go into the bundles

    llm = build_app({"config": "paper", "overrides": over})._bound_deployment.init_args[1]["qwen2-math"]
    replica = llm._bound_deployment._replica_config
    assert replica.placement_group_bundles == bundles and replica.placement_group_strategy == "STRICT_PACK"
    assert replica.ray_actor_options["num_gpus"] == 0 and "resources" not in replica.ray_actor_options

    with pytest.raises(ConfigError, match=r"tensor_parallel_size 2 needs num_gpus: 2 .* not 1"):
        load_config("paper", ["models.qwen2-math.tensor_parallel_size=2"])
