"""What every operator component shares: a Signature that holds the configuration, and the
stream enable of the II=1 pipeline."""

from __future__ import annotations

from amaranth.lib import wiring

__all__ = ["OperatorSignature", "OperatorComponent"]


class OperatorSignature(wiring.Signature):
    """A signature parameterised by one golden configuration object (subclasses set ``config_type``
    and ``build_members``)."""

    config_type: type = object
    owner: str = "operator"

    def __init__(self, config):
        self.check_parameters(config)
        self._config = config
        super().__init__(self.build_members(config))

    @classmethod
    def build_members(cls, config) -> dict:
        raise NotImplementedError

    @classmethod
    def check_parameters(cls, config):
        if not isinstance(config, cls.config_type):
            raise TypeError(f"{cls.owner}: config must be a {cls.config_type.__name__}, not {config!r}")
        division = getattr(config, "division", None)
        if division is not None and division.arch == "temporal":
            raise ValueError(f"{cls.owner}: div_arch='temporal' is iterative (one division at a time, "
                             f"up to 2**{division.q_width} - 1 steps) and cannot sit in the operator's "
                             "II=1 pipeline; allowed: 'binary', 'thermometer'")

    @property
    def config(self):
        return self._config

    def __eq__(self, other):
        return type(other) is type(self) and other.config == self.config

    def __repr__(self):
        return f"{self.owner}.Signature({self.config!r})"


class OperatorComponent(wiring.Component):
    """``__init__`` just builds the nested ``Signature`` from the configuration."""

    def __init__(self, config):
        super().__init__(self.Signature(config))

    @property
    def config(self):
        return self.signature.config
