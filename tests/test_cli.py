import subprocess
import sys
import time

from scalequest.cli import main


def test_validate_reports_bad_keys_with_exit_code_2(capsys):
    assert main(["validate", "--config", "tiny", "responses.nn=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ConfigError:") and "responses.nn: unknown key" in err


def test_validate_accepts_packaged_configs_and_overrides(capsys):
    assert main(["validate", "--config", "paper", "num_candidates=10"]) == 0
    assert "is valid" in capsys.readouterr().out


def test_validate_explain_lists_every_key(capsys):
    assert main(["validate", "--explain"]) == 0
    out = capsys.readouterr().out
    for key in ("num_candidates (required)", "responses.n (default 5)", "generators.<index>.share (required)",
                "train.qft.learning_rate (default 2e-05)"):
        assert key in out


def test_synthesize_fails_fast_on_missing_model_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    t0 = time.perf_counter()
    assert main(["synthesize", "--config", "tiny"]) == 2
    assert time.perf_counter() - t0 < 10  # before Ray starts
    assert "no model folder at 'models/smollm2-135m-instruct'" in capsys.readouterr().err


def test_help_does_not_import_heavy_libraries():
    code = "import sys, scalequest.cli as c; c.build_parser(); print(sorted(m for m in ('torch','vllm','ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
