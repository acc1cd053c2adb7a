"""The FPGA target: one frozen object that synthesis, place-and-route, the FPGA files, the sweep and
the command line all read.

``FpgaTarget(family, device, package, speed_grade, freq_mhz, seed)``: ``family`` is a
:class:`Family` (``"ecp5"`` or ``"ice40"``; strings accepted); ``device`` is nextpnr's device flag
without ``--`` and ``package`` its package (defaults per family: ECP5 LFE5U-25F ``25k`` in
``CABGA381`` at speed grade 6, iCE40 ``hx8k`` in ``ct256``); ``freq_mhz`` is the place-and-route
target; ``target_mhz`` the clock the generator pipelines each operator for (FloPoCo's idea:
:mod:`spikeops.hdl.pipelining`; written into each operator configuration's ``target_mhz`` by
:meth:`FpgaTarget.configure`, so that the latency formulas, the manifest and the testbench follow;
None keeps each configuration's own); ``seed`` the placer's seed; ``primitives`` which circuits hold the multipliers' and
tables' registers (:class:`spikeops.hdl.dsp.Primitives`: by default the family's own, ``ecp5``
blocks on ECP5 and ``generic`` fabric registers elsewhere; ``generic`` is allowed on every family).
Everything is checked on construction with an error naming the parameter, its value and what is
allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from spikeops.golden.choices import Choice
from spikeops.golden.config import OperatorConfig
from spikeops.hdl.dsp import Primitives

__all__ = ["Family", "FAMILIES", "FpgaTarget", "add_target_args", "target_from_args", "with_target_mhz"]


class Family(Choice):
    """The FPGA families the flows synthesise for (Yosys ``synth_<family>``, ``nextpnr-<family>``)."""

    ECP5 = "ecp5"
    ICE40 = "ice40"


# per family: devices (the nextpnr flag without "--"), the default device, package and speed grade
# (None: the family has none), the allowed speed grades, the flag that lets pins go unconstrained, and
# the primitives the emission may instantiate for it (the first is the default)
FAMILIES = {
    Family.ECP5: {"devices": ("25k", "45k", "85k", "um-25k", "um-45k", "um-85k", "um5g-25k", "um5g-45k",
                              "um5g-85k"),
                  "device": "25k", "package": "CABGA381", "speed_grade": 6, "speed_grades": (6, 7, 8),
                  "unconstrained": "--lpf-allow-unconstrained", "primitives": (Primitives.ECP5, Primitives.GENERIC)},
    Family.ICE40: {"devices": ("lp384", "lp1k", "lp4k", "lp8k", "hx1k", "hx4k", "hx8k", "up3k", "up5k",
                               "u1k", "u2k", "u4k"),
                   "device": "hx8k", "package": "ct256", "speed_grade": None, "speed_grades": (),
                   "unconstrained": "--pcf-allow-unconstrained", "primitives": (Primitives.GENERIC,)},
}


@dataclass(frozen=True)
class FpgaTarget:
    """Where a design is synthesised and placed (see the module docstring); ``None`` fields take
    the family's default."""

    family: Family = Family.ECP5
    device: str | None = None
    package: str | None = None
    speed_grade: int | None = None
    freq_mhz: float = 100.0
    seed: int = 1
    primitives: Primitives | None = None
    target_mhz: float | None = None

    def __post_init__(self):
        family = Family.parse(self.family, "nextpnr", "family", quote=False)
        spec = FAMILIES[family]
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("family", family)
        set_("device", self.device or spec["device"])
        set_("package", self.package or spec["package"])
        if self.device not in spec["devices"]:
            raise ValueError(f"nextpnr: device={self.device!r} is not allowed for {family}; allowed: "
                             f"{', '.join(spec['devices'])}")
        grade = spec["speed_grade"] if self.speed_grade is None else self.speed_grade
        if grade != spec["speed_grade"] and grade not in spec["speed_grades"]:
            raise ValueError(f"nextpnr: speed_grade={grade!r} is not allowed for {family}; allowed: "
                             + (", ".join(map(str, spec["speed_grades"])) or "none (the family has no speed grades)"))
        set_("speed_grade", grade)
        if isinstance(self.freq_mhz, bool) or not isinstance(self.freq_mhz, (int, float)) or not self.freq_mhz > 0:
            raise ValueError(f"nextpnr: freq_mhz={self.freq_mhz!r} is not allowed; allowed: a frequency > 0")
        set_("freq_mhz", float(self.freq_mhz))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"nextpnr: seed={self.seed!r} is not allowed; allowed: an integer")
        if self.target_mhz is not None:
            lo, hi = OperatorConfig.TARGET_MHZ_RANGE
            if isinstance(self.target_mhz, bool) or not isinstance(self.target_mhz, (int, float)) \
                    or not lo <= self.target_mhz <= hi:
                raise ValueError(f"target: target_mhz={self.target_mhz!r} is not allowed; allowed: a frequency in "
                                 f"[{lo:g}, {hi:g}] MHz")
            set_("target_mhz", float(self.target_mhz))
        allowed = spec["primitives"]
        if self.primitives is None:
            set_("primitives", allowed[0])
        else:
            prims = Primitives.parse(self.primitives, "nextpnr", "primitives")
            if prims not in allowed:
                raise ValueError(f"nextpnr: primitives={prims.value!r} is not allowed for {family}; allowed: "
                                 + ", ".join(repr(p.value) for p in allowed))
            set_("primitives", prims)

    def replace(self, **changes) -> "FpgaTarget":
        return dataclasses.replace(self, **changes)

    def configure(self, cfg):
        """``cfg`` as this target has the generator pipeline it: with ``target_mhz`` set when the
        target has one (:func:`with_target_mhz`), else unchanged."""
        return cfg if self.target_mhz is None else with_target_mhz(cfg, self.target_mhz)

    @property
    def nextpnr(self) -> str:
        """The place-and-route tool: ``nextpnr-<family>``."""
        return f"nextpnr-{self.family}"

    def nextpnr_args(self, json_in: str, report: str) -> list[str]:
        """nextpnr's arguments (without the executable): unconstrained pins, timing allowed to fail."""
        speed = ["--speed", str(self.speed_grade)] if self.speed_grade is not None else []
        return ["--json", json_in, f"--{self.device}", "--package", self.package, *speed,
                "--freq", f"{self.freq_mhz:g}", "--timing-allow-fail", FAMILIES[self.family]["unconstrained"],
                "--seed", str(self.seed), "--report", report]

    def to_json(self) -> dict:
        return {"family": self.family.value, "device": self.device, "package": self.package,
                "speed_grade": self.speed_grade, "freq_mhz": self.freq_mhz, "seed": self.seed,
                "primitives": self.primitives.value, "target_mhz": self.target_mhz}

    def describe(self) -> str:
        grade = f" speed {self.speed_grade}" if self.speed_grade is not None else ""
        return f"{self.family} {self.device} {self.package}{grade}, {self.primitives} primitives"


def with_target_mhz(cfg, mhz: float):
    """``cfg`` (an operator configuration, or a time-stepped wrapper's around its operator) with
    ``target_mhz=mhz``."""
    from spikeops.golden.steps import StepConfig
    if isinstance(cfg, StepConfig):
        return dataclasses.replace(cfg, inner=cfg.inner.replace(target_mhz=mhz))
    return cfg.replace(target_mhz=mhz)


def add_target_args(parser, *, freq: float = 100.0, seed: int = 1, family: bool = True, pipelining: bool = False):
    """The target's options on an argparse parser (``--family --device --package --speed-grade
    --freq --seed --primitives``, and ``--target-mhz`` with ``pipelining``)."""
    if family:
        parser.add_argument("--family", choices=Family.values(), default=Family.ECP5.value)
    parser.add_argument("--device", help="nextpnr device flag without '--' (default: 25k / hx8k)")
    parser.add_argument("--package", help="package (default: CABGA381 / ct256)")
    parser.add_argument("--speed-grade", type=int, help="ECP5 speed grade (default 6)")
    parser.add_argument("--freq", type=float, default=None,
                        help=f"place-and-route target MHz (default: --target-mhz if given, else {freq:g})")
    parser.add_argument("--seed", type=int, default=seed, help=f"placement seed (default {seed})")
    parser.add_argument("--primitives", choices=Primitives.values(),
                        help="multiplier and table registers: 'ecp5' blocks (MULT18X18D, DP16KD) or 'generic' "
                        "fabric (default: the family's own)")
    if pipelining:
        parser.add_argument("--target-mhz", type=float, metavar="MHZ",
                            help="the clock the generator pipelines each operator for (its configuration's "
                            "target_mhz: how many division neurons share a stage, spikeops.hdl.pipelining); "
                            "default: each configuration's own")
    parser.set_defaults(freq_default=freq)


def target_from_args(args, **overrides) -> FpgaTarget:
    target_mhz = getattr(args, "target_mhz", None)
    freq = args.freq if args.freq is not None else target_mhz or getattr(args, "freq_default", 100.0)
    fields = {"family": getattr(args, "family", Family.ECP5), "device": args.device, "package": args.package,
              "speed_grade": args.speed_grade, "freq_mhz": freq, "seed": args.seed,
              "primitives": getattr(args, "primitives", None), "target_mhz": target_mhz}
    return FpgaTarget(**(fields | overrides))
