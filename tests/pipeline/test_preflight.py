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


def test_hub_ids_pass_when_online_and_fail_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    check_model_path("models.x.path", "Qwen/Qwen2-Math-7B-Instruct")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="Qwen/Qwen2-Math-7B-Instruct"):
        check_model_path("models.x.path", "Qwen/Qwen2-Math-7B-Instruct")


def test_real_folder_passes(tiny_model):
    check_model_path("models.x.path", str(tiny_model))
