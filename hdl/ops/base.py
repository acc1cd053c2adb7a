"""What every operator component adds to the house style: its division must fit an II=1 pipeline."""

from __future__ import annotations

from ..component import ConfigSignature
from ..division import check_pipelined

__all__ = ["OperatorSignature"]


class OperatorSignature(ConfigSignature):
    owner = "operator"

    @classmethod
    def check_parameters(cls, config):
        super().check_parameters(config)
        division = getattr(config, "division", None)
        if division is not None:
            check_pipelined(division, cls.owner, "div_arch")
