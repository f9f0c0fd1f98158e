"""Config → Ray Serve application: one `LLMServer` deployment per model that a generator, the judge or the
solver names (models shared by several roles load once), one `ScorerServer` (reward + difficulty models) and
the `Ingress`, each with the autoscaling and resources of its `serve.*` entry.

  build_application(cfg)       the bound application (for `serve.run`)
  build_app(args)              the builder `serve run` / `serve deploy` import: args {config, overrides}
  serve_config(cfg, source, overrides)   Serve's YAML config (a dict) for `serve deploy`
  run_serve(cfg)               `scalequest serve`: local (or `ray.address`) Ray, Serve on serve.host:port
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

IMPORT_PATH = "scalequest.serve.app:build_app"


def served_models(cfg) -> list[str]:
    """Model keys that get an LLM deployment: every generator's, the judge's and the solver's."""
    names = [g.model for g in cfg.generators] + [cfg.solvability.model, cfg.responses.model]
    return list(dict.fromkeys(names))


def deployment_options(dep, name: str, num_cpus: float, num_gpus: float, runtime_env: dict | None = None,
                       resources: dict | None = None) -> dict:
    """`Deployment.options(...)` keywords from a `DeploymentConfig`; its num_cpus/num_gpus/resources win over the
    defaults given here. `runtime_env` (Serve merges its env_vars with the application's) goes to the replicas."""
    a = dep.autoscaling
    actor = dict(num_cpus=dep.num_cpus if dep.num_cpus is not None else num_cpus,
                 num_gpus=dep.num_gpus if dep.num_gpus is not None else num_gpus)
    if placed := (dep.resources if dep.resources is not None else resources):
        actor["resources"] = dict(placed)
    if runtime_env:
        actor["runtime_env"] = runtime_env
    return dict(
        name=name,
        max_ongoing_requests=dep.max_ongoing_requests,
        health_check_period_s=dep.health_check_period_s,
        autoscaling_config=dict(min_replicas=a.min_replicas, max_replicas=a.max_replicas,
                                initial_replicas=max(a.min_replicas, 1),
                                target_ongoing_requests=a.target_ongoing_requests,
                                upscale_delay_s=a.upscale_delay_s, downscale_delay_s=a.downscale_delay_s),
        ray_actor_options=actor,
    )


def build_application(cfg):
    """The Serve application for a validated `SynthesisConfig`."""
    from scalequest.config import DeploymentConfig
    from scalequest.pipeline.plan import engine_bundles
    from scalequest.runtime import ENGINE_RUNTIME_ENV
    from scalequest.serve.deployments import LLMServer, ScorerServer
    from scalequest.serve.ingress import Ingress

    s = cfg.serve
    llms = {}
    for key in served_models(cfg):
        m = cfg.models[key]
        # vLLM replicas at niceness 0, like the pipeline's engine actors (Ray starts workers at 15)
        opts = deployment_options(s.llm.get(key, DeploymentConfig()), f"llm-{key}", m.num_cpus, m.num_gpus,
                                  ENGINE_RUNTIME_ENV, m.resources)
        if bundles := engine_bundles(m):  # tensor parallel: the replica and its vLLM workers in one group
            opts["ray_actor_options"].update(num_gpus=0)
            opts["ray_actor_options"].pop("resources", None)
            opts.update(placement_group_bundles=bundles, placement_group_strategy="STRICT_PACK")
        llms[key] = LLMServer.options(**opts).bind(m.model_dump())
    scorer = ScorerServer.options(**deployment_options(s.reward, "scorer", 0.5, 0.0)).bind(
        cfg.reward.model_dump(), cfg.difficulty.model_dump())
    ingress = Ingress.options(**deployment_options(s.ingress, "ingress", 0.5, 0.0))
    return ingress.bind(cfg.model_dump(mode="json"), llms, scorer)


def build_app(args: dict):
    """Serve's application builder: `serve run scalequest.serve.app:build_app config=tiny` or the YAML's
    `args`.

    args: `config` (a YAML path or packaged name) and optional `overrides` (a list of `key=value`, or one
    string separated by spaces).
    """
    from scalequest.config import load_config
    from scalequest.errors import ConfigError

    if "config" not in args:
        raise ConfigError("serve app args: missing 'config' — pass config=<path or tiny|paper>")
    overrides = args.get("overrides") or []
    if isinstance(overrides, str):
        overrides = overrides.split()
    return build_application(load_config(args["config"], list(overrides)))


def serve_config(cfg, source: str, overrides: list[str]) -> dict:
    """Serve's config file (for `serve deploy` / `serve run FILE`) that rebuilds this app from the same
    project config: the import path plus args, so the project YAML stays the one source of truth."""
    s = cfg.serve
    # the app is built on the cluster, where the current directory is not this one: relative paths resolve
    # against this config's root
    if not any(o.startswith("root=") for o in overrides):
        overrides = [*overrides, f"root={cfg.root_dir()}"]
    app = dict(name=s.app_name, route_prefix=s.route_prefix, import_path=IMPORT_PATH,
               args=dict(config=str(source), overrides=list(overrides)))
    if cfg.ray.env_vars:
        app["runtime_env"] = {"env_vars": dict(cfg.ray.env_vars)}
    return dict(proxy_location=s.proxy_location, http_options=dict(host=s.host, port=s.port),
                applications=[app])


def run_serve(cfg, *, blocking: bool = True):
    """Start Ray (as the pipeline does: local unless `ray.address`) and Serve, deploy the app. Not `blocking`:
    return the ingress handle. `blocking`: serve until Ctrl-C (or SIGTERM, via the CLI), then shut Serve down,
    and Ray if this call started it, and release the shared memory vLLM left."""
    import ray
    from ray import serve

    from scalequest.runtime import init_ray, release_vllm_shm, shm_segments

    shm_before = shm_segments()
    started = init_ray(cfg.ray)
    serve.start(http_options=dict(host=cfg.serve.host, port=cfg.serve.port), proxy_location=cfg.serve.proxy_location)
    log.info("serving on http://%s:%d%s", cfg.serve.host, cfg.serve.port, cfg.serve.route_prefix)
    app = dict(name=cfg.serve.app_name, route_prefix=cfg.serve.route_prefix)
    if not blocking:
        return serve.run(build_application(cfg), blocking=False, **app)
    try:
        serve.run(build_application(cfg), blocking=True, **app)
    except (KeyboardInterrupt, SystemExit):
        log.info("stopping: shutting Serve down")
    finally:
        serve.shutdown()
        if started:
            ray.shutdown()
        release_vllm_shm(only=shm_segments() - shm_before)
    return None
