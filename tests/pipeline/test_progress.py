"""The status line: counts, rate and ETA from block summaries, on an injected clock; the same figures as Ray
gauges on the metrics endpoint."""

import time

import pytest

from scalequest.pipeline.progress import Progress


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def block(rows, kept, tokens):
    return {"rows": [rows], "kept": [kept], "question_tokens": [tokens], "judge_tokens": [0], "response_tokens": [0]}


def test_progress_line_counts_rate_eta_and_stages(caplog):
    clock = Clock()
    p = Progress(100, done=20, kept=10, every_s=30, stage_rows=lambda: {"generate": 60, "language": 50},
                 clock=clock)
    clock.t += 10
    with caplog.at_level("INFO", logger="scalequest.pipeline.progress"):
        p.add(block(20, 5, 400))  # 10 s in: not due yet
        assert not caplog.records
        clock.t += 30
        p.add(block(20, 5, 600))
    assert len(caplog.records) == 1
    line = p.line()
    # 40 made this execution in 40 s, 40 left → 40 s; 1,000 tokens over 40 s
    assert line == ("progress: 60/100 candidates (60%), 20 kept, 0 failed, 1,000 tokens at 25.0 tok/s, ETA 40s"
                    " | generate 60, language 50")
    assert "\r" not in line


def test_progress_before_any_block_and_at_the_end():
    clock = Clock()
    p = Progress(10, clock=clock)
    assert "ETA ?" in p.line() and "0/10" in p.line()
    clock.t += 5
    p.add(block(10, 3, 0))
    assert "10/10 candidates (100%), 3 kept" in p.line() and p.line().endswith("ETA 0s")


def test_the_line_comes_when_due_without_blocks_and_names_engines_still_loading(caplog):
    clock, loading = Clock(), ["smollm2"]
    p = Progress(64, every_s=15, clock=clock, loading=lambda: list(loading))
    with caplog.at_level("INFO", logger="scalequest.pipeline.progress"):
        clock.t += 10
        p.tick()
        assert not caplog.records  # not due yet
        clock.t += 6
        p.tick()
        clock.t += 1
        p.tick()  # due again only 15 s after the last line
    [record] = caplog.records
    assert record.getMessage() == ("progress: 0/64 candidates (0%), 0 kept, 0 failed, 0 tokens at 0.0 tok/s, ETA ? "
                                   "| loading engine(s): smollm2")
    loading.clear()
    assert "loading" not in p.line()


def test_the_timer_thread_prints_lines_until_stopped(caplog):
    p = Progress(10, every_s=0.05)
    with caplog.at_level("INFO", logger="scalequest.pipeline.progress"):
        stop = p.ticking(0.01)
        deadline = time.monotonic() + 10
        while len(caplog.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        time.sleep(0.1)
        seen = len(caplog.records)
        time.sleep(0.2)
    assert seen >= 3 and len(caplog.records) == seen  # lines while ticking, none after the stop


def test_too_many_errors_needs_more_than_the_share_and_more_than_one():
    p = Progress(1000, done=500, clock=Clock())
    p.add({**block(100, 0, 0), "errors": [1]})
    assert not p.too_many_errors(0.01)  # one failure is not a trend
    p.add({**block(100, 0, 0), "errors": [1]})
    assert not p.too_many_errors(0.01)  # 2 of 200 = 1%: not above it
    p.add({**block(50, 0, 0), "errors": [2]})
    assert p.too_many_errors(0.01) and not p.too_many_errors(0.05)  # 4 of 250


@pytest.mark.ray
def test_progress_figures_reach_rays_metrics_endpoint():
    import re
    import time

    import httpx
    import ray

    from scalequest.pipeline.progress import RayMetrics

    ray.init(num_cpus=1, include_dashboard=False)
    try:
        p = Progress(100, done=10, kept=4, stage_rows=lambda: {"generate": 30}, metrics=RayMetrics("run-m"))
        p.add(block(20, 6, 500))
        p.line()
        port = ray._private.worker._global_node.metrics_export_port
        want = {"ray_scalequest_candidates_done": 30.0, "ray_scalequest_kept": 10.0, "ray_scalequest_tokens": 500.0,
                "ray_scalequest_stage_rows": 30.0}
        found, deadline = {}, time.time() + 60  # Ray exports every few seconds
        while set(found) != set(want) and time.time() < deadline:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            for line in text.splitlines():
                m = re.match(r'(ray_scalequest_\w+)\{[^}]*run="run-m"[^}]*\} ([\d.]+)', line)
                if m and m.group(1) in want:
                    found[m.group(1)] = float(m.group(2))
            time.sleep(1)
        assert found == want
    finally:
        ray.shutdown()
