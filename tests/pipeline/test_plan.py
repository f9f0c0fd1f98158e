"""The stage plan: one declaration that build_dataset wires, cpu_reservation sums and used_models reads; every
actor stage's count comes from the config."""

import pytest

from scalequest.config import load_config
from scalequest.pipeline.build import cpu_reservation
from scalequest.pipeline.plan import operators, stage_plan, used_models


def test_plan_lists_the_actor_stages_in_order_with_optional_ones_when_enabled():
    assert [s.name for s in stage_plan(load_config("tiny"))] == [
        "generate", "language", "question_type", "decontam", "dedup", "near_dup", "solvability", "responses",
        "reward"]
    cfg = load_config("tiny", ["solvability.enabled=false", "difficulty.model_path=x", "decontam.enabled=false",
                               "near_dup.enabled=false"])
    assert [s.name for s in stage_plan(cfg)] == ["generate", "language", "question_type", "dedup", "difficulty",
                                                 "responses", "reward"]


@pytest.mark.parametrize("key, stage", [
    ("generate.concurrency", "generate"), ("language.concurrency", "language"), ("dedup.concurrency", "dedup"),
    ("question_type.concurrency", "question_type"), ("decontam.concurrency", "decontam"),
    ("near_dup.concurrency", "near_dup"),
    ("solvability.concurrency", "solvability"), ("difficulty.concurrency", "difficulty"),
    ("responses.concurrency", "responses"), ("reward.concurrency", "reward"),
])
def test_every_actor_stage_count_comes_from_the_config(key, stage):
    cfg = load_config("tiny", [f"{key}=3", "difficulty.model_path=x"])
    assert {s.name: s.actors for s in stage_plan(cfg)}[stage] == 3


def test_cpu_reservation_sums_the_plan_and_the_engines_of_the_models_it_names():
    cfg = load_config("tiny", ["language.concurrency=2", "models.smollm2.replicas=2"])
    need = cpu_reservation(cfg)
    assert need["stage actors"] == pytest.approx(sum(s.num_cpus * s.actors for s in stage_plan(cfg)))
    assert need["engines"] == 2.0 and used_models(cfg) == {"smollm2"}
    assert cpu_reservation(load_config("tiny"))["stage actors"] == pytest.approx(need["stage actors"] - 0.5)


def test_filters_with_the_same_pool_fold_into_one_operator_and_a_pool_of_their_own_splits_them():
    ops = operators(stage_plan(load_config("tiny")))
    assert [[s.name for s in op] for op in ops] == [
        ["generate"], ["language", "question_type", "decontam", "dedup", "near_dup"], ["solvability"],
        ["responses"], ["reward"]]
    split = operators(stage_plan(load_config("tiny", ["decontam.concurrency=2"])))
    assert [[s.name for s in op] for op in split] == [
        ["generate"], ["language", "question_type"], ["decontam"], ["dedup", "near_dup"], ["solvability"],
        ["responses"], ["reward"]]  # reward loads nothing but takes batches of its own size
    scored = operators(stage_plan(load_config("tiny", ["difficulty.model_path=x", "solvability.enabled=false"])))
    assert [[s.name for s in op] for op in scored][1:3] == [
        ["language", "question_type", "decontam", "dedup", "near_dup"], ["difficulty"]]  # loads its scorer


def test_judge_model_is_used_only_while_the_judge_runs():
    cfg = load_config("tiny", ["models.judge={path: x}", "solvability.model=judge"])
    assert used_models(cfg) == {"smollm2", "judge"}
    assert used_models(cfg.model_copy(update={"solvability": cfg.solvability.model_copy(
        update={"enabled": False})})) == {"smollm2"}


@pytest.mark.parametrize("stage", ["generate", "language", "question_type", "decontam", "dedup", "near_dup", "solvability",
                                   "difficulty", "responses", "reward"])
def test_every_actor_stage_takes_an_autoscaling_bound_that_reaches_ray_data(stage):
    from scalequest.pipeline.build import actor_pool

    cfg = load_config("tiny", [f"{stage}.concurrency=2", f"{stage}.max_concurrency=5", "difficulty.model_path=x"])
    spec = {s.name: s for s in stage_plan(cfg)}[stage]
    pool = actor_pool(spec.actors, spec.max_actors, spec.calls)
    assert (pool.min_size, pool.max_size) == (2, 5)
    assert cpu_reservation(cfg) == cpu_reservation(load_config("tiny", [
        f"{stage}.concurrency=2", "difficulty.model_path=x"]))  # autoscaled actors grow into free CPUs only


def test_a_pool_without_a_bound_is_fixed_and_a_bound_below_the_size_is_refused():
    from scalequest.errors import ConfigError
    from scalequest.pipeline.build import actor_pool

    pool = actor_pool(3, None, 4)
    assert (pool.min_size, pool.max_size, pool.max_tasks_in_flight_per_actor) == (3, 3, 4)
    with pytest.raises(ConfigError, match="max_concurrency 1 is below concurrency 2"):
        load_config("tiny", ["responses.concurrency=2", "responses.max_concurrency=1"])


def test_preflight_checks_the_models_the_plan_calls_or_loads(tmp_path, tiny_model):
    from scalequest.errors import ConfigError
    from scalequest.pipeline.preflight import preflight

    base = [f"output.dir={tmp_path}", f"models.smollm2.path={tiny_model}"]
    with pytest.raises(ConfigError, match="difficulty.model_path"):
        preflight(load_config("tiny", [*base, f"difficulty.model_path={tmp_path}/missing/scorer"]))
    with pytest.raises(ConfigError, match="reward.model_path"):
        preflight(load_config("tiny", [*base, "reward.kind=sequence_classification",
                                       f"reward.model_path={tmp_path}/missing/rm"]))
    with pytest.raises(ConfigError, match="models.judge.path"):
        preflight(load_config("tiny", [*base, f"models.judge={{path: {tmp_path}/missing/judge}}",
                                       "solvability.model=judge"]))
    preflight(load_config("tiny", [*base, f"models.judge={{path: {tmp_path}/missing/judge}}",
                                   "solvability.model=judge", "solvability.enabled=false"]))  # judge not called


def test_placement_resources_reach_each_stage_and_engine_and_do_not_change_rows():
    cfg = load_config("tiny", ["language.resources={cpu_node: 1}", "models.smollm2.resources={engine: 1}"])
    specs = {s.name: s for s in stage_plan(cfg)}
    assert specs["language"].resources == (("cpu_node", 1.0),) and specs["generate"].resources == ()
    assert cfg.models["smollm2"].resources == {"engine": 1.0}
    assert cfg.config_hash() == load_config("tiny").config_hash()  # placement is a runtime key
