"""Ask Linux for AMX tile permission in every vLLM process (a vLLM general plugin; pyproject's
`vllm.general_plugins` entry point, which vLLM loads in the API process, the engine core and each worker).

Why: on Intel Xeons with AMX, Linux lets a process run AMX tile instructions only after it asked for the
XTILEDATA state with `arch_prctl(ARCH_REQ_XCOMP_PERM)`; the first tile instruction without it raises SIGILL.
vLLM-CPU's attention kernel takes its "amx" path for bf16 whenever the CPU *has* AMX
(`torch.cpu._is_amx_tile_supported()` reads CPUID) but never asks. oneDNN asks lazily, in its own bf16 kernels,
so on most models a oneDNN matmul has asked before attention runs. A tiny bf16 model on a short prompt sends
every matmul to vLLM's small-GEMM kernels instead, and the worker dies (exit -4). docs/install.md, "Known
issues", has the details and a reproduction. Asking is what oneDNN does anyway; on CPUs without AMX the call
fails harmlessly.

Test: tests/engines/test_amx.py (a bf16 tiny model on "2+2=" in a fresh process).
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

log = logging.getLogger(__name__)

SYS_ARCH_PRCTL = 158  # x86_64 syscall number
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18


def request_amx_permission() -> bool:
    """Request AMX tile data permission for this process (idempotent). True when granted; False on CPUs or
    kernels without AMX, and on anything but Linux x86_64."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    granted = libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    if not granted:
        log.debug("AMX tile permission not granted (errno %d): this CPU or kernel has no AMX", ctypes.get_errno())
    return granted
