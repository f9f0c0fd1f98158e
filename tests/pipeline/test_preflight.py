import pytest

from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.pipeline.preflight import preflight
from scalequest.runtime import check_model_path


def test_missing_model_folder_fails_fast_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(ConfigError, match=r"models.smollm2.path: no model folder at 'models/smollm2-135m-instruct'"):
        preflight(load_config("tiny"))


def test_folder_without_config_json_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="without config.json"):
        check_model_path("models.x.path", str(tmp_path))


def test_hub_id_in_the_local_hub_cache_passes_even_offline(tmp_path, monkeypatch):
    snapshot = tmp_path / "models--Qwen--Qwen2-Math-7B-Instruct" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--Qwen--Qwen2-Math-7B-Instruct" / "refs").mkdir()
    (tmp_path / "models--Qwen--Qwen2-Math-7B-Instruct" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_model_path("models.x.path", "Qwen/Qwen2-Math-7B-Instruct")


def test_unknown_hub_id_or_missing_relative_folder_fails_before_any_actor(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a job's working dir: models/ was not uploaded
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"'models/smollm2-135m-instruct' is neither a model folder here .* "
                                          r"HF_HUB_OFFLINE=1\) — for a local model use a path every node sees"):
        check_model_path("models.smollm2.path", "models/smollm2-135m-instruct")
    monkeypatch.delenv("HF_HUB_OFFLINE")  # online or not, the hub has no such model (or cannot be reached)
    with pytest.raises(ConfigError, match=r"models\.x\.path: 'scalequest-test-nobody/no-such-model' is neither"):
        check_model_path("models.x.path", "scalequest-test-nobody/no-such-model")


def test_real_folder_passes(tiny_model):
    check_model_path("models.x.path", str(tiny_model))
