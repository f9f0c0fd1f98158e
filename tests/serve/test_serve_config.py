"""The `serve` config section and what the app builder makes of it (no Ray started)."""

import os

import pytest
import yaml

from scalequest.cli import main
from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.serve.app import IMPORT_PATH, deployment_options, serve_config, served_models


def test_models_shared_by_roles_get_one_deployment():
    assert served_models(load_config("tiny")) == ["smollm2"]
    assert served_models(load_config("paper")) == ["qgen-deepseek", "qgen-qwen2", "qwen2-math"]


def test_deployment_options_take_autoscaling_and_model_resources():
    cfg = load_config("paper", ["serve.llm.qwen2-math.autoscaling.max_replicas=8",
                                "serve.llm.qwen2-math.autoscaling.target_ongoing_requests=32"])
    m = cfg.models["qwen2-math"]
    opts = deployment_options(cfg.serve.llm["qwen2-math"], "llm-qwen2-math", m.num_cpus, m.num_gpus)
    assert opts["ray_actor_options"] == {"num_cpus": 4, "num_gpus": 1}
    a = opts["autoscaling_config"]
    assert (a["min_replicas"], a["max_replicas"], a["target_ongoing_requests"]) == (1, 8, 32)


def test_serve_llm_key_must_name_a_model():
    with pytest.raises(ConfigError, match=r"serve.llm.nope: 'nope' is not a key of `models`"):
        load_config("tiny", ["serve.llm.nope.max_ongoing_requests=4"])


def test_autoscaling_min_above_max_is_a_config_error():
    with pytest.raises(ConfigError, match=r"min_replicas \(3\) is above max_replicas \(2\)"):
        load_config("tiny", ["serve.ingress.autoscaling.min_replicas=3",
                             "serve.ingress.autoscaling.max_replicas=2"])


def test_cli_writes_a_serve_deploy_config(tmp_path, capsys):
    out = tmp_path / "serve.yaml"
    over = ["serve.port=8123", "serve.proxy_location=HeadOnly"]
    assert main(["serve", "--config", "tiny", *over, "--write-serve-config", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    app = doc["applications"][0]
    assert app["import_path"] == IMPORT_PATH
    # built on the cluster, where the current directory differs: relative paths resolve against this root
    assert app["args"] == {"config": "tiny", "overrides": [*over, f"root={os.getcwd()}"]}
    assert doc["http_options"] == {"host": "127.0.0.1", "port": 8123} and doc["proxy_location"] == "HeadOnly"
    assert app["runtime_env"]["env_vars"]["RAY_AUTH_MODE"] == "disabled"
    assert serve_config(load_config("tiny", over), "tiny", over) == doc


def test_build_app_binds_one_llm_deployment_per_model_with_its_resources():
    from scalequest.serve.app import build_app

    app = build_app({"config": "paper", "overrides": "serve.llm.qwen2-math.autoscaling.max_replicas=8"})
    ingress = app._bound_deployment  # Serve keeps the bound graph here; no Ray needed to inspect it
    cfg_dict, llms, scorer = ingress.init_args
    assert ingress.name == "ingress" and cfg_dict["name"] == "paper"
    assert sorted(llms) == ["qgen-deepseek", "qgen-qwen2", "qwen2-math"]
    qwen = llms["qwen2-math"]._bound_deployment
    assert qwen.name == "llm-qwen2-math"
    assert qwen.ray_actor_options == {"num_cpus": 4.0, "num_gpus": 1.0,  # and vLLM at niceness 0, not Ray's 15
                                      "runtime_env": {"env_vars": {"RAY_worker_niceness": "0"}}}
    assert "runtime_env" not in scorer._bound_deployment.ray_actor_options
    assert qwen._deployment_config.autoscaling_config.max_replicas == 8
    assert scorer._bound_deployment.name == "scorer"


def test_replicas_are_placed_by_the_models_resources_or_their_deployments_own():
    from scalequest.serve.app import build_app

    app = build_app({"config": "paper", "overrides": ["models.qwen2-math.resources={engine: 1}",
                                                      "serve.reward.resources={cpu_pool: 1}"]})
    _, llms, scorer = app._bound_deployment.init_args
    assert llms["qwen2-math"]._bound_deployment.ray_actor_options["resources"] == {"engine": 1}
    assert "resources" not in llms["qgen-qwen2"]._bound_deployment.ray_actor_options
    assert scorer._bound_deployment.ray_actor_options["resources"] == {"cpu_pool": 1}


def test_build_app_without_config_names_the_fix():
    from scalequest.serve.app import build_app

    with pytest.raises(ConfigError, match="missing 'config'"):
        build_app({})


def test_paper_config_serves_each_model_on_its_gpus_with_autoscaling():
    cfg = load_config("paper")
    assert cfg.serve.host == "0.0.0.0" and set(cfg.serve.llm) == set(served_models(cfg))
    for key in served_models(cfg):
        m, dep = cfg.models[key], cfg.serve.llm[key]
        opts = deployment_options(dep, f"llm-{key}", m.num_cpus, m.num_gpus)
        assert opts["ray_actor_options"]["num_gpus"] == 1
        assert opts["autoscaling_config"]["max_replicas"] == m.replicas
