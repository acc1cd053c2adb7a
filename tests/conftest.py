import os

import pytest
from hypothesis import HealthCheck, settings

# deterministic, CI-sized property tests; `HYPOTHESIS_PROFILE=thorough` for a deeper run
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def numpy_backend():
    """The golden model itself computes inside converted models (the fast path has its own tests)."""
    from spikeops.gen.llm.operators import set_backend

    set_backend("numpy")
    yield
    set_backend("fast")
