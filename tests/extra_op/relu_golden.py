"""ReLU, golden model: ``y = max(x, 0)`` moved from the input grid to the output grid.

Input ``s<in_width>.<in_frac>``; output ``u<out_width>.<out_frac>`` with ``out_width = in_width - 1
- in_frac + out_frac`` (the input's integer bits).  In integers, with ``s = out_frac - in_frac``:
``y = max(x, 0) << s`` when ``s >= 0``, else ``(max(x, 0) + r) >> -s`` with ``r = 2**(-s-1)`` for
``nearest`` (half up) and 0 for ``floor``, saturated to the output's largest code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeops.golden.choices import Rounding
from spikeops.golden.config import OperatorConfig
from spikeops.golden.fixed import FixedFormat, check_codes


@dataclass(frozen=True)
class ReLUConfig(OperatorConfig):
    kind = "relu"

    in_width: int = 12
    in_frac: int = 6
    out_frac: int = 6
    rounding: str = "nearest"
    reference_name = "ReLU: max(x, 0)"

    def _validate(self):
        self._int("in_width", 2, 32)
        self._int("in_frac", 0, self.in_width - 1)
        self._int("out_frac", 0, 24)
        self._choice("rounding", Rounding)
        if self.out_width < 1:
            self._fail("out_frac", f"leaves no output bits with in_width={self.in_width}, in_frac={self.in_frac}")

    @property
    def out_width(self) -> int:
        return self.in_width - 1 - self.in_frac + self.out_frac

    @property
    def in_format(self) -> FixedFormat:
        return FixedFormat(self.in_width, self.in_frac, True)

    @property
    def out_format(self) -> FixedFormat:
        return FixedFormat(self.out_width, self.out_frac, False)

    def reference(self, x):
        """The exact ReLU in float64."""
        return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def relu(codes, cfg: ReLUConfig) -> np.ndarray:
    """Output codes of ReLU on input codes (see the module docstring)."""
    x = np.maximum(check_codes(codes, cfg.in_format, owner="relu"), 0)
    s = cfg.out_frac - cfg.in_frac
    if s >= 0:
        y = x << s
    else:
        y = (x + ((1 << (-s - 1)) if cfg.rounding == Rounding.NEAREST else 0)) >> -s
    return np.minimum(y, cfg.out_format.max_code)
