"""Compiling and loading the C kernels (``kernels.c``, package data) and running them on threads.

``kernels.c`` is built once per process with the system C compiler (``$CC``, else ``cc`` or
``gcc``) into a private temporary directory, loaded with ctypes and the directory removed (a loaded
library stays mapped); nothing is cached across processes.  Flags: ``-O3 -std=c99
-ffp-contract=off -fno-trapping-math`` (IEEE float arithmetic: no fast-math, no FMA contraction;
``-fno-trapping-math`` only lets the loops vectorise, no trap is ever enabled), with
``-march=native`` first and without it if that fails.  Without a compiler (or ctypes), or with
``SPIKEOPS_FAST_NO_KERNEL`` set, :func:`kernel_available` is False and the paths run their torch
code instead.

Every kernel takes ``(int64 lo, int64 hi, ...)``, works on the rows ``[lo, hi)`` and returns
nonzero when it met an input golden rejects; :func:`run` splits the rows over torch's intra-op
thread count (:func:`threads`) on one thread pool per process and raises
:class:`~.reference.Fallback` on such a return.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .quantize import F32_MAX_WIDTH
from .reference import Fallback

__all__ = ["kernel_available", "kernel_quantizes", "run", "ptr", "threads"]

#: the C source, shipped beside this module as package data
SOURCE = "kernels.c"
_FLAGS = ["-O3", "-std=c99", "-ffp-contract=off", "-fno-trapping-math", "-shared", "-fPIC"]

#: each kernel's arguments after ``lo, hi``: P pointer, I int64, F float, D double
_SIGNATURES = {
    "spikeops_lookup_f32": "PFFPP",
    "spikeops_softmax_sum_f32": "PPPIFFIIPPP",
    "spikeops_softmax_out_f32": "PPPIFFIPPPPPDDP",
    "spikeops_norm_codes_f32": "PIFFIP",
    "spikeops_norm_root": "PIIIPPIIIPP",
    "spikeops_norm_out_f32": "PIPPPPPDDDDP",
}
_kernel_lock = threading.Lock()
#: ``{"dll": library or None}`` once loaded (the tests set ``None`` to force the torch code)
_kernel_state: dict = {}


def _compile_kernel():
    """The loaded library with its ctypes signatures set, or None (no compiler, no ctypes, or
    ``SPIKEOPS_FAST_NO_KERNEL``)."""
    if os.environ.get("SPIKEOPS_FAST_NO_KERNEL"):
        return None
    try:
        import ctypes
    except ImportError:
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    tmp = tempfile.mkdtemp(prefix="spikeops-fast-")
    lib = os.path.join(tmp, "kernels.so")
    dll = None
    with importlib.resources.as_file(importlib.resources.files(__package__) / SOURCE) as src:
        for flags in (["-march=native"], []):
            try:
                subprocess.run([cc, *_FLAGS, *flags, "-o", lib, str(src), "-lm"],
                               check=True, capture_output=True, timeout=120)
                dll = ctypes.CDLL(lib)
                break
            except (OSError, subprocess.SubprocessError):
                continue
    shutil.rmtree(tmp, ignore_errors=True)  # a loaded library stays mapped
    if dll is None:
        return None
    types = {"P": ctypes.c_void_p, "I": ctypes.c_int64, "F": ctypes.c_float, "D": ctypes.c_double}
    for name, args in _SIGNATURES.items():
        fn = getattr(dll, name)
        fn.restype, fn.argtypes = ctypes.c_int64, [ctypes.c_int64, ctypes.c_int64, *(types[a] for a in args)]
    return dll


def _kernel():
    try:
        return _kernel_state["dll"]
    except KeyError:
        with _kernel_lock:
            if "dll" not in _kernel_state:
                _kernel_state["dll"] = _compile_kernel()
            return _kernel_state["dll"]


def kernel_available() -> bool:
    """True when the compiled kernels are in use (else the torch code, and golden's ``norm_root``)."""
    return _kernel() is not None


def kernel_quantizes(x: torch.Tensor, fmt) -> bool:
    """The kernels quantise float32 inputs of formats up to 24 bits (as ``scaled``'s float32 path)."""
    return x.dtype == torch.float32 and fmt.width <= F32_MAX_WIDTH and fmt.frac >= 0 and _kernel() is not None


def threads(n: int | None = None) -> int:
    """The worker count of the fast back end: torch's intra-op threads (set to ``n`` when given)."""
    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


@functools.lru_cache(maxsize=1)
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """One pool per process (a forked child must not wait on its parent's threads)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikeops-fast")


def run(name: str, rows: int, *args, grain: int = 64) -> None:
    """Kernel ``name`` on rows ``[0, rows)``, split over torch's thread count (ctypes drops the GIL)
    in chunks of at least ``grain`` rows; raises ``Fallback`` when the kernel met an input golden
    rejects."""
    fn = getattr(_kernel(), name)
    workers = max(1, min(torch.get_num_threads(), rows // grain))
    if workers == 1:
        bad = fn(0, rows, *args)
    else:
        cuts = np.linspace(0, rows, workers + 1).astype(np.int64).tolist()
        bad = max(_pool(workers, os.getpid()).map(lambda lo, hi: fn(lo, hi, *args), cuts[:-1], cuts[1:]))
    if bad:
        raise Fallback


def ptr(a) -> int | None:
    """The data address of a tensor or numpy array for a kernel argument (None: a NULL pointer)."""
    if a is None:
        return None
    return a.data_ptr() if isinstance(a, torch.Tensor) else a.ctypes.data
