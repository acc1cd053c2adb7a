import numpy as np
import pytest

from spikeops.golden.neurons import LIFConfig, lif_run, lif_step


def test_integrate_and_fire_with_reset_by_subtraction():
    v, s = lif_step(np.array([5, 9, 10]), 3, 12)
    assert s.tolist() == [False, True, True]
    assert v.tolist() == [8, 0, 1]


def test_reset_to_zero_and_leak():
    v, s = lif_step(np.array([20]), 0, 10, reset="zero")
    assert s.tolist() == [True] and v.tolist() == [0]
    # v <- v - (v >> 2) + i = 16 - 4 + 1 = 13
    v, s = lif_step(np.array([16]), 1, 100, leak=2)
    assert v.tolist() == [13] and not s[0]


def test_population_thresholds_broadcast():
    _, s = lif_step(0, 7, np.array([2, 4, 6, 8]))
    assert s.tolist() == [True, True, True, False]


def test_run_counts_spikes_and_checks_the_membrane_width():
    spikes, v = lif_run([10, 0, 0, 0, 0], 3)
    assert spikes.sum() == 3 and v == 1
    with pytest.raises(OverflowError, match="s8 range"):
        lif_run([100, 100], 1000, membrane_width=8)


def test_bad_reset_mode():
    with pytest.raises(ValueError, match="reset='hold' is not allowed"):
        lif_step(0, 1, 1, reset="hold")


@pytest.mark.parametrize("kwargs, message", [
    ({"neurons": 0}, r"lif: neurons=0 is out of range; allowed: in \[1, 65536\]"),
    ({"membrane_width": 63}, r"lif: membrane_width=63 is out of range; allowed: in \[2, 62\]"),
    ({"leak": 0}, r"lif: leak=0 is out of range; allowed: in \[1, 32\]"),
    ({"reset": "hold"}, r"lif: reset='hold' is not allowed; allowed: 'subtract', 'zero'"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LIFConfig(**kwargs)
