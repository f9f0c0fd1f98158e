"""The cost block: engine time summed over a run's executions, divided by kept pairs, projected to 1M."""

from scalequest.config import load_config
from scalequest.pipeline.cost import cost_of, executions, record_execution, render_cost


def test_cost_adds_executions_and_projects_per_kept_pair(tmp_path):
    cfg = load_config("tiny", ["cost.engine_hour_usd=2.0"])
    record_execution(tmp_path, cfg, 30.0, 40, {"smollm2": {"up_s": 28.0, "busy_s": 24.0}})
    record_execution(tmp_path, cfg, 10.0, 24)  # a resumed execution whose engine did not answer
    assert [e["candidates"] for e in executions(tmp_path)] == [40, 24]
    c = cost_of(tmp_path, cfg)(20, {"question_tokens": 400, "judge_tokens": 100, "response_tokens": 1500,
                                    "total": 2000})
    assert c["executions"] == 2 and c["engine_s_per_kept"] == {"smollm2": 2.0}  # 40 engine-s / 20 kept
    assert c["tokens_per_kept"]["total"] == 100.0 and c["unit"] == "engine-hours"
    assert c["per_1m_kept"] == {"hours": 555.6, "usd": 1111.1}  # 2 s per pair × 1M = 555.6 h, × $2
    text = "\n".join(render_cost(c))
    assert "engine-seconds smollm2 2 (busy 80%, 86% after load)" in text and "555.6 engine-hours, $1,111" in text
    assert "522.9 A100" in text
    assert c["engine_busy_share"] == {"smollm2": 0.8}  # 24 busy of the 30 engine-s that were timed
    assert c["engine_busy_after_load"] == {"smollm2": 0.857}  # 24 of the 28 s after the engine loaded


def test_gpu_runs_count_gpu_hours(tmp_path):
    cfg = load_config("tiny", ["models.smollm2.num_gpus=1", "models.smollm2.replicas=2"])
    record_execution(tmp_path, cfg, 36.0, 10)
    c = cost_of(tmp_path, cfg)(10, {"question_tokens": 0, "judge_tokens": 0, "response_tokens": 0, "total": 0})
    assert c["unit"] == "GPU-hours" and c["engine_s_per_kept"] == {"smollm2": 7.2}
    assert c["per_1m_kept"]["hours"] == 2000.0  # 72 GPU-s / 10 kept × 1M / 3600


def test_no_kept_pair_says_so(tmp_path):
    c = cost_of(tmp_path, load_config("tiny"))(0, {"question_tokens": 0, "judge_tokens": 0, "response_tokens": 0,
                                                   "total": 0})
    assert render_cost(c) == ["cost: no kept pair yet, so no cost per pair"]
