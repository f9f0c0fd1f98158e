import pytest

from scalequest.config import PACKAGED, apply_overrides, load_config
from scalequest.errors import ConfigError


@pytest.mark.parametrize("name", PACKAGED)
def test_every_packaged_config_validates(name):
    cfg = load_config(name)
    assert cfg.generators and cfg.responses.n >= 1


def test_paper_config_matches_the_paper_setup():
    cfg = load_config("paper")
    shares = {g.template: g.share for g in cfg.generators}
    assert shares == {"deepseek": 0.4, "qwen2": 0.6}
    assert all(g.sampling.temperature == 1.0 and g.sampling.top_p == 0.99 for g in cfg.generators)
    r = cfg.responses
    assert (r.n, r.sampling.temperature, r.sampling.top_p, r.sampling.max_tokens) == (5, 0.7, 0.95, 2048)
    assert cfg.models[r.model].path == "Qwen/Qwen2-Math-7B-Instruct" == cfg.models[cfg.solvability.model].path
    assert cfg.reward.kind == "internlm2" and cfg.reward.trust_remote_code


def test_unknown_key_fails_with_its_name():
    with pytest.raises(ConfigError, match=r"responses\.nn: unknown key"):
        load_config("tiny", ["responses.nn=3"])


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError) as err:
        load_config("tiny", ["generators.0.share=-1", "models.smollm2.dtype=fp8"])
    msg = str(err.value)
    assert "generators.0.share" in msg and "-1" in msg and "models.smollm2.dtype" in msg and "'fp8'" in msg


def test_overrides_arrive_typed_and_address_list_items():
    cfg = load_config("tiny", ["num_candidates=7", "generators.0.sampling.top_p=0.5", "ray.address=null"])
    assert cfg.num_candidates == 7 and cfg.generators[0].sampling.top_p == 0.5 and cfg.ray.address is None


@pytest.mark.parametrize("override, fragment", [
    ("num_candidates", "expected key=value"),
    ("generators.5.share=1", "index must be 0..0"),
    ("name.x=1", "goes inside a str"),
])
def test_malformed_overrides_explain_the_fix(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config("tiny", [override])


def test_an_empty_override_of_a_string_says_how_to_pass_an_empty_string():
    with pytest.raises(ConfigError, match=r"generators.0.hint: .*\(got None\) — for an empty string pass "
                                          r"generators.0.hint='' \(quoted\)"):
        load_config("tiny", ["generators.0.hint="])
    assert load_config("tiny", ["generators.0.hint=''"]).generators[0].hint == ""


def test_model_reference_must_exist():
    with pytest.raises(ConfigError, match=r"responses.model: 'nope' is not a key of `models`"):
        load_config("tiny", ["responses.model=nope"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no file at"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_internlm2_reward_requires_trust_remote_code():
    with pytest.raises(ConfigError, match="trust_remote_code"):
        load_config("paper", ["reward.trust_remote_code=false"])


def test_config_hash_is_stable_and_changes_with_values():
    assert load_config("tiny").config_hash() == load_config("tiny").config_hash()
    assert load_config("tiny").config_hash() != load_config("tiny", ["seed=1"]).config_hash()


def test_apply_overrides_creates_missing_mappings():
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


def test_configuration_doc_is_current():
    from pathlib import Path

    from scalequest.config import explain

    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [line for line in explain() if line not in doc]
    assert not missing, f"docs/configuration.md is stale ({missing[:2]}…): run python scripts/gen_config_doc.py"


def test_auto_prefix_keeps_chatml_start_token_the_tokenizer_does_not_add(tiny_model):
    from scalequest.engines.chat import ChatFormatter

    prefix, stops = ChatFormatter(str(tiny_model)).prefix("auto")
    assert prefix.startswith("<|im_start|>system\n") and prefix.endswith("<|im_start|>user\n")
    assert stops[0] == "<|im_end|>"


def test_runtime_keys_stay_out_of_the_config_hash_and_the_output_diff():
    from scalequest.config import changed_output_keys

    base = load_config("tiny")
    runtime = load_config("tiny", ["generate.concurrency=5", "responses.batch_size=3", "ray.num_cpus=2",
                                   "output.dir=/elsewhere", "models.smollm2.replicas=2", "name=other"])
    assert changed_output_keys(base, runtime) == [] and runtime.config_hash() == base.config_hash()
    rows = load_config("tiny", ["seed=9", "generators.0.sampling.max_tokens=7", "responses.n=2"])
    assert changed_output_keys(base, rows) == ["generators.0.sampling.max_tokens", "responses.n", "seed"]
    assert rows.config_hash() != base.config_hash()


def test_relative_paths_resolve_against_root_and_are_stored_and_hashed_as_written(tmp_path, monkeypatch):
    """A `ray job submit` job runs in an uploaded copy of the project without models/: `root` names the folder the
    config's relative paths live in, and every actor gets absolute paths. A hub id stays a hub id."""
    from scalequest.pipeline.run_dir import stored_config, write_config

    (tmp_path / "proj" / "models" / "m").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.jsonl").write_text('{"question": "What is 1+1?"}\n')
    over = ["models.smollm2.path=models/m", "decontam.benchmarks=[{path: ../data/test.jsonl}]", "output.dir=runs",
            "models.judge={path: Qwen/Qwen2-Math-7B-Instruct}", "responses.model=judge"]
    monkeypatch.chdir(tmp_path)  # the job's working dir: none of the relative paths is here
    cfg = load_config("tiny", [*over, f"root={tmp_path / 'proj'}"])
    assert cfg.models["smollm2"].path == str(tmp_path / "proj" / "models" / "m")
    assert cfg.decontam.benchmarks[0].path == str(tmp_path / "data" / "test.jsonl")
    assert cfg.output.dir == str(tmp_path / "proj" / "runs")
    assert cfg.models["judge"].path == "Qwen/Qwen2-Math-7B-Instruct"

    # what leaves the machine (rows' provenance, the dataset card) names the model as written, not this disk
    from scalequest.pipeline.build import provenance

    assert cfg.written("models", "smollm2", "path") == "models/m" and cfg.written("models", "judge", "path") == \
        "Qwen/Qwen2-Math-7B-Instruct"
    per_gen, common = provenance(cfg, {g.name: ("<prefix>",) for g in cfg.generators})
    assert {p["generator_model"] for p in per_gen.values()} == {"models/m"}
    assert common["solver_model"] == "Qwen/Qwen2-Math-7B-Instruct"

    here = load_config("tiny", over)  # root unset: the current directory, which lacks them
    assert here.models["smollm2"].path == "models/m" and here.output.dir == str(tmp_path / "runs")
    assert here.config_hash() == cfg.config_hash()  # paths hash as written; root is a runtime key

    write_config(tmp_path, cfg)
    stored = stored_config(tmp_path)
    assert stored.models["smollm2"].path == "models/m" and stored.root == str(tmp_path / "proj")
    assert stored.config_hash() == cfg.config_hash()

    with pytest.raises(ConfigError, match=r"root: no folder at '/nonexistent/x'"):
        load_config("tiny", ["root=/nonexistent/x"])
