"""Which machine made a record: CPU, cores, the environment that caps kernel dispatch, threads.

Floating-point results depend on the kernels a CPU runs (AVX-512 vs AVX2 vs SSE, oneDNN or
not) and on the thread count (how reductions are split). Every record carries this dict, so a
number can be traced to the machine and the dispatch that made it.

``provenance`` is framework-neutral: it imports no ML framework, and the parent process can call
it. The framework-specific part (the ISA level torch dispatched, each framework's thread pools)
is read inside the worker that ran the framework: ``keras_impl.worker.machine`` and
``torch_impl.worker.machine`` (a parity record, which runs both, merges the two:
``l2compare.parity.grid.machine``).
"""
from __future__ import annotations

import os
import platform

from l2compare.core.environment import THREAD_VARS

# Environment variables that cap or change which kernels the math libraries dispatch
# (``make test-cpus`` uses the first three to emulate other CPUs on this one).
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "TF_ENABLE_ONEDNN_OPTS",
            "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE", "MKL_DEBUG_CPU_TYPE")


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _set(names: tuple[str, ...]) -> dict[str, str]:
    return {name: os.environ[name] for name in names if name in os.environ}


def provenance() -> dict:
    """The framework-neutral machine facts of this process.

    ``isa_caps`` and ``threads`` hold only the variables that are set: an empty dict means the
    libraries chose for themselves.
    """
    return {"arch": platform.machine(), "cpu": cpu_model(), "cores": os.cpu_count(), "isa_caps": _set(ISA_CAPS),
            "threads": _set(THREAD_VARS), "platform": platform.platform(), "python": platform.python_version()}
