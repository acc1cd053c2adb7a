"""What every operator component adds to the house style: its division must fit an II=1 pipeline."""

from __future__ import annotations

from ..component import ConfigSignature

__all__ = ["OperatorSignature"]


class OperatorSignature(ConfigSignature):
    owner = "operator"

    @classmethod
    def check_parameters(cls, config):
        super().check_parameters(config)
        division = getattr(config, "division", None)
        if division is not None and division.arch == "temporal":
            raise ValueError(f"{cls.owner}: div_arch='temporal' is iterative (one division at a time, "
                             f"up to 2**{division.q_width} - 1 steps) and cannot sit in the operator's "
                             "II=1 pipeline; allowed: 'binary', 'thermometer'")
