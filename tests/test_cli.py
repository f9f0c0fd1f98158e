import subprocess
import sys
import time
from pathlib import Path

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


JOBS = sorted(p for p in (Path(__file__).resolve().parents[1] / "ray_jobs").glob("*.py") if not p.name.startswith("_"))


def test_every_ray_job_calls_library_functions_not_the_cli():
    assert [p.name for p in JOBS] == ["evaluate.py", "synthesize.py", "train_difficulty.py", "train_qft.py",
                                      "train_qpo.py", "train_sft.py"]
    for job in JOBS:
        text = job.read_text()
        assert "scalequest.cli" not in text and "run_job(" in text, job.name
        out = subprocess.run([sys.executable, str(job), "--help"], capture_output=True, text=True, check=True).stdout
        assert "ray job submit" in out and "--config" in out, job.name


def test_a_ray_job_with_a_bad_config_exits_2_with_the_reason_before_ray_starts(tmp_path):
    job = next(p for p in JOBS if p.name == "synthesize.py")
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, str(job), "--config", "tiny", "responses.nn=3"], capture_output=True,
                         text=True, cwd=tmp_path, check=False)
    assert run.returncode == 2 and "responses.nn: unknown key" in run.stderr
    assert time.perf_counter() - t0 < 30
    run = subprocess.run([sys.executable, str(job), "--resume", str(tmp_path)], capture_output=True, text=True,
                         cwd=tmp_path, check=False)
    assert run.returncode == 2 and f"--resume {tmp_path}: no config.yaml there" in run.stderr


def test_a_job_joins_the_cluster_it_runs_on_unless_told_otherwise():
    from scalequest.entry import job_args

    assert job_args("", ["--config", "tiny", "num_candidates=4"]).overrides == ["num_candidates=4", "ray.address=auto"]
    assert job_args("", ["--config", "tiny", "ray.address=10.0.0.1:6379"]).overrides == ["ray.address=10.0.0.1:6379"]
    args = job_args("", ["--resume", "runs/x"], resume=True)
    assert args.config is None and args.resume == "runs/x"
