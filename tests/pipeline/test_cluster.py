"""Placement on a Ray that lacks the resource asked for fails before the run. (Placement on a two-node Ray, read back
from Ray's state API, is tested on the cluster the tests bring up: tests/cluster/test_on_a_cluster.py.)"""

import pytest

from scalequest.config import load_config
from scalequest.errors import ConfigError
from scalequest.pipeline.run import run_synthesis


@pytest.mark.ray
def test_placement_on_a_resource_this_ray_lacks_fails_before_the_run(tiny_llm, tmp_path):
    cfg = load_config("tiny", [*tiny_llm, f"output.dir={tmp_path}", "models.smollm2.resources={engine: 1}"])
    with pytest.raises(ConfigError, match=r"models\.smollm2\.resources: this Ray has 0 of resource 'engine'"):
        run_synthesis(cfg)
