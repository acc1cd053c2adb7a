"""The house style of every spikeops component: a nested ``Signature`` that holds one golden
configuration object, checks it, compares and prints by it; the component's ``__init__`` just
builds that signature.

    class PWLExp(ConfigComponent):
        class Signature(ConfigSignature):
            config_type = ExpConfig
            owner = "PWLExp"

            @classmethod
            def build_members(cls, config):
                return {"i": In(...), "o": Out(...)}
"""

from __future__ import annotations

from amaranth.lib import wiring

__all__ = ["ConfigSignature", "ConfigComponent", "OperatorComponent"]


class ConfigSignature(wiring.Signature):
    """A signature parameterised by one configuration object (subclasses set ``config_type``,
    ``owner`` and ``build_members``)."""

    config_type: type = object
    owner: str = "component"

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

    @property
    def config(self):
        return self._config

    def __eq__(self, other):
        return type(other) is type(self) and other.config == self.config

    def __repr__(self):
        return f"{self.owner}.Signature({self.config!r})"


class ConfigComponent(wiring.Component):
    """``__init__`` just builds the nested ``Signature`` from the configuration."""

    def __init__(self, config):
        super().__init__(self.Signature(config))

    @property
    def config(self):
        return self.signature.config


class OperatorComponent(ConfigComponent):
    """An operator's component: besides the configuration it has a Division Neuron Group whose
    binary neurons share pipeline stages, :data:`NEURONS_PER_STAGE` of them without a
    ``target_mhz`` and as :mod:`spikeops.hdl.pipelining` chooses with one, and whose shift scaling
    finds leading ones in :data:`LEADING_ONE_STAGES` stages (likewise)."""

    #: binary division neurons per pipeline stage without a ``target_mhz``
    NEURONS_PER_STAGE = 1
    #: stages of the division's leading-one detection without a ``target_mhz``
    LEADING_ONE_STAGES = 1
    #: its facts (``claims``, elaborated for the ``"formal"`` platform only, None otherwise: they never
    #: reach an emission, and a row operator's grow with its queues) list the elements it holds
    #: in output order (:attr:`spikeops.hdl.claims.Claims.sequence`), so a proof can follow one
    ORDER_FACTS = False
    #: and say, of the element a proof tagged, that it holds its answer's zero wherever its value is
    #: known (:class:`spikeops.hdl.claims.Tag`), so a proof can follow it to a zero output
    ZERO_FACTS = False

    @classmethod
    def fixed_neurons_per_stage(cls, config) -> int:
        """Binary division neurons per pipeline stage for ``config`` without a ``target_mhz``
        (:data:`NEURONS_PER_STAGE`; an operator whose choice depends on its method overrides it)."""
        return cls.NEURONS_PER_STAGE

    @classmethod
    def fixed_leading_one_stages(cls, config) -> int:
        """Stages of the division's leading-one detection for ``config`` without a ``target_mhz``
        (:data:`LEADING_ONE_STAGES`; an operator whose choice depends on its configuration
        overrides it)."""
        return cls.LEADING_ONE_STAGES

    @classmethod
    def neurons_per_stage(cls, config) -> int:
        """Binary division neurons per pipeline stage for ``config``."""
        from .pipelining import neurons_per_stage
        return neurons_per_stage(config, cls.fixed_neurons_per_stage(config))

    @classmethod
    def leading_one_stages(cls, config) -> int:
        """Stages of the division's leading-one detection for ``config``."""
        from .pipelining import leading_one_stages
        return leading_one_stages(config, cls.fixed_leading_one_stages(config))

    @classmethod
    def division_options(cls, config) -> dict:
        """The keyword arguments of ``division_stages`` and ``division_latency`` for ``config``."""
        return {"neurons_per_stage": cls.neurons_per_stage(config),
                "leading_one_stages": cls.leading_one_stages(config)}

    @classmethod
    def pipelining(cls, config) -> dict:
        """What the generator chose for ``config``'s ``target_mhz`` and why (the manifest's entry)."""
        from .pipelining import report
        return report(config, cls.fixed_neurons_per_stage(config), cls.fixed_leading_one_stages(config))
