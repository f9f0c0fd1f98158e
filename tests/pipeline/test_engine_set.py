"""`engine_pool.EngineSet`: the pipeline's engine actors for QPO data, fail-rate labels and `scalequest eval`."""

from __future__ import annotations

import psutil
import pytest

from scalequest.engines.base import Sampling


@pytest.mark.ray
def test_engine_set_shares_an_engine_actor_per_folder_gives_it_the_configs_env_and_leaves_nothing(
        tiny_model, tiny_engine_cfg):
    import ray

    from scalequest.config import RayConfig
    from scalequest.pipeline.engine_pool import EngineSet
    from scalequest.runtime import shm_segments

    if ray.is_initialized():
        ray.shutdown()  # the set starts its own Ray, so that the config's env_vars reach its workers
    before = shm_segments()
    path = str(tiny_model)
    rcfg = RayConfig(num_cpus=4, object_store_gib=0.5, env_vars={"SQ_TEST_ENGINE_ENV": "from-config",
                                                                 "VLLM_CPU_KVCACHE_SPACE": "1",
                                                                 "RAY_AUTH_MODE": "disabled"})
    with EngineSet(rcfg) as engines:
        assert ray.is_initialized()
        a = engines.get(tiny_engine_cfg(path), "tiny")
        assert engines.get(tiny_engine_cfg(path, max_model_len=256)) is a  # same folder: the same engine
        [[gen]] = a.generate(["Hello"], Sampling(max_tokens=2), seeds=[3])
        assert gen.num_tokens > 0
        pid = ray.get(a.actors[0].ready.remote())["pid"]
        assert pid != psutil.Process().pid  # an actor, not this process
        assert psutil.Process(pid).environ().get("SQ_TEST_ENGINE_ENV") == "from-config"
        engines.release({path})
        assert list(engines.open) == [path]
        engines.release()
        assert not engines.open
        psutil.wait_procs([psutil.Process(pid)], timeout=30)
        assert not psutil.pid_exists(pid)
        b = engines.get(tiny_engine_cfg(path), "tiny")
        assert b is not a
    assert not engines.open and not ray.is_initialized()  # it started Ray, so it shut it down
    assert not (shm_segments() - before), "vLLM's /dev/shm segments outlived the engine set"
