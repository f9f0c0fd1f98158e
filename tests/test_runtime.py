"""The shared runtime helpers without Ray: releasing the /dev/shm segments vLLM leaves behind (only those no
live process maps, old enough, and among the given ones)."""

import os
import time
import uuid
from multiprocessing import shared_memory

from scalequest.runtime import SHM_DIR, release_vllm_shm


def _segment(age_s: float = 0.0):
    path = SHM_DIR / f"psm_sqtest_{uuid.uuid4().hex[:8]}"
    path.write_bytes(b"\0" * 4096)
    if age_s:
        old = time.time() - age_s
        os.utime(path, (old, old))
    return path


def test_release_unlinks_unmapped_segments_and_keeps_mapped_young_and_other_ones():
    orphan, young, other = _segment(age_s=60), _segment(), _segment(age_s=60)
    held = shared_memory.SharedMemory(name=f"psm_sqtest_{uuid.uuid4().hex[:8]}", create=True, size=4096)
    mapped = SHM_DIR / held.name
    os.utime(mapped, (time.time() - 60, time.time() - 60))
    try:
        removed = release_vllm_shm(min_age_s=10, only={orphan, young, mapped})
        assert removed == [orphan] and not orphan.exists()
        assert young.exists() and mapped.exists() and other.exists()
    finally:
        held.close()
        held.unlink()
        for p in (young, other):
            p.unlink(missing_ok=True)
