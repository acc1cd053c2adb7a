import os

import pytest
from hypothesis import HealthCheck, settings

# deterministic, CI-sized property tests; `HYPOTHESIS_PROFILE=thorough` for a deeper run
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# the tests' Verilator runs are short: the design's C++ compiled at -O0 builds faster than at
# Verilator's -Os (default LayerNorm 143 -> 50 s, Softmax 65 -> 44 s) and runs their few thousand
# cycles about as fast (spikeops.verif.env.verilator_opt_fast); a value of one's own wins
os.environ.setdefault("SPIKEOPS_VERILATOR_OPT_FAST", "-O0")


@pytest.fixture
def numpy_backend():
    """The golden model itself computes inside converted models (the fast path has its own tests)."""
    from spikeops.gen.llm.operators import set_backend

    set_backend("numpy")
    yield
    set_backend("fast")
