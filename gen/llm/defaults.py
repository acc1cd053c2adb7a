"""Defaults and choices the LLM commands and the main job share (one place, so they cannot drift
apart); nothing here imports torch, so the command line's help stays light."""

from spikeops.golden.choices import Choice


class Backend(Choice):
    """How the golden integers are computed inside models (accepts its strings: ``Backend("fast")``)."""

    FAST = "fast"    # spikeops.gen.llm.fast.fast_golden: tables, C kernels, torch
    NUMPY = "numpy"  # spikeops.gen.llm.fast.numpy_golden: the golden model itself


#: the back ends' names (argparse choices)
BACKENDS = Backend.values()

#: BoolQ passages the calibration runs the float model on (``--calibration-texts``)
CALIBRATION_TEXTS = 32
