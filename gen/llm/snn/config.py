"""The spiking network's configuration: ``SNNConfig`` (what the converted network is) and
``EnergyConfig`` (how its activity is priced).

Both are frozen, validated :class:`spikeops.golden.config.Config` objects (JSON, ``stable_hash``),
and an ``SNNConfig`` parses from the command-line form ``"T=4,L=16,W=8,A=8"``
(:meth:`SNNConfig.parse`): keys are the field names below (and the energy constants'), values
integers, numbers, ``settle``/``inf`` for ``T``, or a choice's string; an error names the key, the
value and what is allowed.

The network (see :mod:`.network` for the equations):

* ``W`` weight bits: integer weights per output channel, ``|w| <= 2**(W-1) - 1``;
* ``A`` activation bits: every activation quantiser has ``N = 2**A`` levels
  ``clamp(floor(x/s + 1/2), -N/2, N/2 - 1)``; ``A.<site>=bits`` (``A_sites``) overrides one kind of
  site in every layer (``A.p=12``: the attention probabilities; sites in :data:`SITES`);
* ``mode``: ``qann`` (the quantised ANN, evaluated once on totals) or ``snn`` (time-stepped);
* ``T`` time steps (``None``, written ``settle``: until every neuron is quiet, at most
  ``max_steps``; with ``fast`` that is the QANN itself, proven equal); ``L`` the most spikes a
  neuron emits in one step (1: SpikeZIP-TF's ST-BIF+; larger: SpikeLLM's multi-level spikes);
* ``ops``: the nonlinear operators on totals: ``spikeops`` (the integer golden operators) or
  ``float`` (the exact float64 operators, output rounded to the same output grid);
* ``scale``/``pow2``: the activation-scale rule (:mod:`.quantizers`); ``smooth``: the SmoothQuant
  migration strength ``alpha`` at the quantisers no norm precedes (:mod:`.smooth`; 0: off).  The
  defaults (``mse``, powers of two, ``alpha = 0.8``) were chosen on SmolLM2 (mean NLL on six LAMBADA
  passages, float 3.75: W8A8 ``max`` without smoothing 5.51, ``mse`` without smoothing 6.50,
  ``max`` with 0.8 4.22, the defaults 4.00); ``P``: bits of the integer
  rescaling multipliers; ``division``: ``plan`` keeps the conversion plan's operator outputs,
  ``tl`` gives the operators whose output feeds a quantiser ``n = ceil(log2(2*T*L + 1))`` output
  fraction bits, the paper's (T, L)-division (``T=settle`` counts as ``A`` bits).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from spikeops.golden.choices import Choice
from spikeops.golden.config import Config

__all__ = ["SNNConfig", "EnergyConfig", "Mode", "Ops", "ScaleRule", "Division", "AcRule", "SITES"]


class Mode(Choice):
    QANN = "qann"  # the quantised ANN on totals, one pass
    SNN = "snn"    # the time-stepped spiking network


class Ops(Choice):
    SPIKEOPS = "spikeops"  # the bit-exact integer operators of the golden model
    FLOAT = "float"        # the exact float64 operators, output on the same grid


class ScaleRule(Choice):
    MAX = "max"  # s = max|x| / (N/2 - 1): nothing clips
    MSE = "mse"  # the s minimising the squared quantisation error on the calibration sample


class Division(Choice):
    PLAN = "plan"  # the operators' output formats as the conversion plan has them
    TL = "tl"      # (T, L)-division: n = ceil(log2(2 T L + 1)) output fraction bits


class AcRule(Choice):
    UNITS = "units"    # a spike of magnitude m costs m accumulates (as m unary spikes would)
    EVENTS = "events"  # a spike event costs one accumulate whatever its magnitude


@dataclass(frozen=True)
class EnergyConfig(Config):
    """Energy per operation in pJ (45 nm, Horowitz ISSCC 2014, the SNN literature's convention).

    ``e_ac`` a synaptic accumulate (32-bit, 0.9), ``e_mac`` a 32-bit float multiply-accumulate
    (4.6); integer operations of neurons and spiking operators: ``e_add`` 32-bit add (0.1),
    ``e_mult`` 32-bit multiply (3.1), ``e_cmp`` compare (an add, 0.1), ``e_shift`` (0.1), ``e_table``
    a read of a small table held in registers (0.1; Horowitz's 8-KB SRAM read is 10); the float
    operators the spiking ones replace: ``e_fadd`` (0.9), ``e_fmult`` (3.7), ``e_fexp`` and
    ``e_fdiv`` (a software exp: range reduction and a degree-6 polynomial, about 7 MACs = 32.2;
    a divide or square root by Newton-Raphson from a table seed, about 4 MACs = 18.4).
    ``ac_rule``: how a multi-level spike is counted (:class:`AcRule`)."""

    kind = "energy"
    e_ac: float = 0.9
    e_mac: float = 4.6
    e_add: float = 0.1
    e_mult: float = 3.1
    e_cmp: float = 0.1
    e_shift: float = 0.1
    e_table: float = 0.1
    e_fadd: float = 0.9
    e_fmult: float = 3.7
    e_fexp: float = 32.2
    e_fdiv: float = 18.4
    ac_rule: str = "units"

    def _validate(self):
        for f in dataclasses.fields(self):
            if f.name != "ac_rule":
                self._number(f.name, 0.0, 1e6)
        self._choice("ac_rule", AcRule)


#: the activation quantiser sites of a decoder layer (:mod:`.observe` describes them)
SITES = ("attn_in", "q", "k", "v", "p", "attn_out", "mlp_in", "mlp_mid")

#: T given as text: these words mean "until every neuron is quiet"
SETTLE_WORDS = ("settle", "inf")


@dataclass(frozen=True)
class SNNConfig(Config):
    """The converted network (see the module docstring)."""

    kind = "snn"
    T: int | None = 4
    L: int = 16
    W: int = 8
    A: int = 8
    mode: str = "snn"
    ops: str = "spikeops"
    scale: str = "mse"
    pow2: bool = True
    smooth: float = 0.8
    P: int = 16
    division: str = "plan"
    fast: bool = True
    max_steps: int = 4096
    A_sites: tuple = ()
    energy: EnergyConfig = field(default_factory=EnergyConfig)

    def _validate(self):
        if self.T is not None:
            self._int("T", 1, 1 << 16)
        self._int("L", 1, 1 << 16)
        self._int("W", 2, 16)
        self._int("A", 2, 16)
        self._choice("mode", Mode)
        self._choice("ops", Ops)
        self._choice("scale", ScaleRule)
        self._bool("pow2")
        self._number("smooth", 0.0, 1.0)
        self._int("P", 4, 30)
        self._choice("division", Division)
        self._bool("fast")
        self._int("max_steps", 1, 1 << 20)
        self._sites()
        if isinstance(self.energy, dict):
            object.__setattr__(self, "energy", EnergyConfig.from_json(self.energy))
        if not isinstance(self.energy, EnergyConfig):
            self._fail("energy", "is not allowed; allowed: an EnergyConfig or its parameters as a dict")

    def _sites(self):
        items = self.A_sites.items() if isinstance(self.A_sites, dict) else self.A_sites
        try:
            pairs = tuple(sorted((str(k), v) for k, v in items))
        except (TypeError, ValueError):
            self._fail("A_sites", "is not allowed; allowed: (site, bits) pairs")
        for site, bits in pairs:
            if site not in SITES:
                raise ValueError(f"snn: A.{site} names no quantiser site; allowed: "
                                 + ", ".join(f"A.{x}" for x in SITES))
            if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
                raise ValueError(f"snn: A.{site}={bits!r} is out of range; allowed: in [2, 16]")
        object.__setattr__(self, "A_sites", pairs)

    def bits(self, site: str) -> int:
        """Activation bits of quantiser ``site`` (a short name of :data:`SITES`, or a
        full ``model.layers.i.<site>``): its ``A.<site>`` override, else ``A``."""
        short = site.rsplit(".", 1)[-1]
        return dict(self.A_sites).get(short, self.A)

    def site_levels(self, site: str) -> tuple[int, int]:
        """``(-N/2, N/2 - 1)`` of quantiser ``site``."""
        n = 1 << self.bits(site)
        return -(n // 2), n // 2 - 1

    def _bool(self, name):
        if not isinstance(getattr(self, name), bool):
            self._fail(name, "is not allowed; allowed: true, false (1, 0)")

    # -- derived ---------------------------------------------------------------------------------
    @property
    def N(self) -> int:
        """Levels of every activation quantiser: ``2**A``."""
        return 1 << self.A

    @property
    def levels(self) -> tuple[int, int]:
        """The quantiser's integer range ``(-N/2, N/2 - 1)``."""
        return -(self.N // 2), self.N // 2 - 1

    @property
    def w_max(self) -> int:
        """The largest weight code: ``2**(W-1) - 1`` (symmetric)."""
        return (1 << (self.W - 1)) - 1

    @property
    def spiking(self) -> bool:
        """True when the time-stepped simulation runs (mode snn, and not the settled fast path)."""
        return self.mode == Mode.SNN and not (self.T is None and self.fast)

    @property
    def steps(self) -> int:
        """Steps the simulation may run: T, or ``max_steps`` until settled (1 for the QANN)."""
        if not self.spiking:
            return 1
        return self.max_steps if self.T is None else self.T

    @property
    def per_step(self) -> int | None:
        """Spikes a neuron may emit per step (None: unbounded, the QANN's single evaluation)."""
        return self.L if self.spiking else None

    @property
    def tl_bits(self) -> int:
        """``n = ceil(log2(2 T L + 1))``: the levels T steps of up to L spikes carry (the
        (T, L)-division's output fraction bits; at ``T=settle`` the quantiser's A bits)."""
        if self.T is None or self.mode == Mode.QANN:
            return self.A
        return max(1, math.ceil(math.log2(2 * self.T * self.L + 1)))

    def describe(self) -> str:
        """The short form, e.g. ``"SNN T=4 L=16 W8A8"``, ``"QANN W8A8"``."""
        wa = f"W{self.W}A{self.A}"
        ops = "" if self.ops == Ops.SPIKEOPS else ", float ops"
        if self.mode == Mode.QANN:
            return f"QANN {wa}{ops}"
        t = "settle" if self.T is None else self.T
        return f"SNN T={t} L={self.L} {wa}{ops}"

    # -- JSON ------------------------------------------------------------------------------------
    def params(self) -> dict:
        out = super().params()
        out["energy"] = self.energy.params()
        return out

    def network_params(self) -> dict:
        """The parameters that change the network's outputs (energy constants left out)."""
        out = self.params()
        del out["energy"]
        return out

    def network_hash(self) -> str:
        """``stable_hash`` of :meth:`network_params` (a key for accuracy results that energy
        constants must not invalidate)."""
        import hashlib
        blob = json.dumps({"kind": self.kind, "params": self.network_params()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # -- the command-line form ---------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, base: "SNNConfig | None" = None) -> "SNNConfig":
        """``"T=4,L=16,W=8,A=8"`` (any fields, energy constants too) on top of ``base`` (default:
        the defaults).  Errors name the key, the value and what is allowed."""
        base = base or cls()
        own = {f.name for f in dataclasses.fields(cls)} - {"energy", "A_sites"}
        energy = {f.name for f in dataclasses.fields(EnergyConfig)}
        changes, e_changes = {}, {}
        for part in str(text).replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ValueError(f"snn: {part!r} is not allowed; allowed: key=value pairs separated by "
                                 f"commas, e.g. 'T=4,L=16,W=8,A=8'")
            key, raw = (s.strip() for s in part.split("=", 1))
            if key.startswith("A."):
                try:
                    bits = int(raw)
                except ValueError:
                    raise ValueError(f"snn: {key}={raw!r} is not allowed; allowed: an integer") from None
                sites = dict(changes.get("A_sites", base.A_sites))
                sites[key[2:]] = bits
                changes["A_sites"] = tuple(sites.items())
            elif key in own:
                changes[key] = _value(cls, key, raw)
            elif key in energy:
                e_changes[key] = _value(EnergyConfig, key, raw)
            else:
                raise ValueError(f"snn: unknown key {key!r} in {part!r}; allowed: "
                                 + ", ".join([*sorted(own, key=_key_order), "A.<site>", *energy]))
        if e_changes:
            changes["energy"] = base.energy.replace(**e_changes)
        return base.replace(**changes) if changes else base

    def spec(self) -> str:
        """The command-line form of the fields that differ from the defaults (``parse`` reads it)."""
        d, out = SNNConfig(), []
        for f in dataclasses.fields(self):
            v, dv = getattr(self, f.name), getattr(d, f.name)
            if f.name == "energy":
                out += [f"{k}={x}" for k, x in v.params().items() if x != dv.params()[k]]
            elif f.name == "A_sites":
                out += [f"A.{k}={x}" for k, x in v]
            elif v != dv or f.name in ("T", "L", "W", "A"):
                out.append(f"{f.name}={_show(v)}")
        return ",".join(out)


def _key_order(k):
    first = ["T", "L", "W", "A", "mode", "ops"]
    return (first.index(k), k) if k in first else (len(first), k)


def _show(v):
    if v is None:
        return "settle"
    if isinstance(v, bool):
        return str(int(v))
    return str(v)


def _value(cls, key, raw: str):
    """The text ``raw`` as the type of ``cls``'s field ``key``."""
    ftype = {f.name: f for f in dataclasses.fields(cls)}[key]
    default = ftype.default
    owner = cls.kind
    low = raw.lower()
    if key == "T" and low in SETTLE_WORDS:
        return None
    if isinstance(default, bool):
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{owner}: {key}={raw!r} is not allowed; allowed: 1, 0, true, false")
    if isinstance(default, int) or key == "T":
        try:
            return int(raw)
        except ValueError:
            extra = " or 'settle'" if key == "T" else ""
            raise ValueError(f"{owner}: {key}={raw!r} is not allowed; allowed: an integer{extra}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{owner}: {key}={raw!r} is not allowed; allowed: a number") from None
    return raw
