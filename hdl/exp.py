"""PWL-Exp in hardware (twin of ``golden/exp.py``): one table read, one multiply-add, a shift.

Uniform chords (latency 5 + ``MULTIPLY_STAGES`` = 8, II 1; 9 where ``slope * t`` takes three or more
multiplier blocks, whose partial products are then summed over two stages): stage 1 computes ``u = z + Hc`` and the
range tests ``z < -H``, ``z >= H``; stage 2 the segment index ``k`` (a bit slice of ``u`` when
``2*Hc/K`` is a power of two, else ``(u * M) >> s``, an exact constant division proven over every
``u`` when the generator runs) and presents the table address, with two extra rows: the clamp above
``H`` and zero below ``-H``; stage 3 registers the row the table reads; stage 4 the offset ``t`` in
the segment; stages 5-7 the product ``slope * t`` (:func:`spikeops.hdl.pipeline.multiply_stages`);
stage 8 ``intercept + ((slope * t) >> slope_shift)``.  Each multiplier and the block RAM's output sit
between registers, with no logic on their paths.  The ROM is filled from :func:`spikeops.golden.exp.exp_table`
(never a second copy of the table).

Range reduction (``method="range"``; latency 6 + 2 ``MULTIPLY_STAGES`` = 12, II 1): stage 1 clips
``z`` to ``[-Hc, Hc]``; stages 2-4 compute ``w = z * L``; stage 5 splits ``w`` into the exponent
``n`` (the shift ``n_top - n``), the segment index ``k`` and the offset ``t`` and reads ``c_k`` and
``d_k`` from a table held in LUTs (the golden :func:`spikeops.golden.exp.range_table`) in two
stages: 16-entry pieces indexed by ``k``'s low four bits (one LUT4 per bit and piece), then the
piece ``k``'s high bits select in stage 6; stages 7-9 multiply ``d_k * t``; stage 10 interpolates
``m = c_k + ((d_k * t) >> tb)``; stages 11 and 12 shift ``m`` right by ``n_top - n``, by the
shift's high bits and then its low bits (0 below ``-H``, ``one_code`` at or above ``H``).
"""

from __future__ import annotations

import functools

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.choices import ExpMethod
from spikeops.golden.exp import ExpConfig, exp_table, range_table

from .component import ConfigComponent, ConfigSignature
from .pipeline import (MULTIPLY_STAGES, CreditPipeline, Pipeline, credit_latency, multiply_latency, multiply_stages,
                       product_sum_stages)
from .rom import TableRom

__all__ = ["PWLExp", "exp_stages", "exp_table_rom", "exp_latency", "index_multiplier", "EXP_LATENCY",
           "range_mantissa_stages", "RANGE_MANTISSA_STAGES"]

#: the uniform method's stages besides its product ``slope * offset``
_UNIFORM_STAGES = 5
#: the uniform method's latency when that product takes at most two multiplier blocks (one stage
#: more for three or four: :func:`exp_latency`)
EXP_LATENCY = _UNIFORM_STAGES + MULTIPLY_STAGES
#: the range-reduced method's mantissa (:func:`range_mantissa_stages`)
RANGE_MANTISSA_STAGES = 3 + 2 * MULTIPLY_STAGES
#: the range-reduced method's latency: the clip, the mantissa, the shift's two stages
RANGE_LATENCY = RANGE_MANTISSA_STAGES + 3
#: ``k``'s low bits that index one piece of the range method's table (a LUT4's inputs)
TABLE_PIECE_BITS = 4


def exp_latency(cfg: ExpConfig) -> int:
    """Pipeline stages of :func:`exp_stages` for ``cfg``."""
    if cfg.method == ExpMethod.RANGE:
        return RANGE_LATENCY
    return _UNIFORM_STAGES + multiply_latency(_product_sum_stages(cfg))


def _offset_width(cfg: ExpConfig) -> int:
    """Bits of the uniform method's offset into its segment, ``t`` (module docstring)."""
    if cfg.index_is_bit_slice:
        return (2 * cfg.H_codes // cfg.K).bit_length() - 1
    return cfg.seg_bits + 1


def _product_sum_stages(cfg: ExpConfig) -> int:
    """The uniform method's ``slope * offset``: its partial products summed in one stage, or in two
    when they are three or more (:func:`spikeops.hdl.pipeline.product_sum_stages`)."""
    return product_sum_stages(unsigned(cfg.slope_width), unsigned(_offset_width(cfg)))


@functools.lru_cache(maxsize=32)
def index_multiplier(cfg: ExpConfig) -> tuple[int, int]:
    """``(M, s)`` with ``(u * M) >> s == (u * K) // (2*Hc)`` for every ``u`` in ``[0, 2*Hc)``.

    The smallest ``s`` that works, checked exhaustively (so the RTL's index is exact, not just
    probably right)."""
    d = 2 * cfg.H_codes
    u = np.arange(d, dtype=np.int64)
    want = (u * cfg.K) // d
    for s in range(0, 63 - cfg.K.bit_length()):
        mult = -(-(cfg.K << s) // d)
        if (u * mult).max() < 1 << 62 and np.array_equal((u * mult) >> s, want):
            return mult, s
    raise ValueError(f"exp: no exact multiply-shift index for H={cfg.H}, K={cfg.K}, in_frac={cfg.in_frac}")


def _row_layout(cfg: ExpConfig):
    fields = {"intercept": unsigned(cfg.out_width), "slope": unsigned(cfg.slope_width)}
    if not cfg.index_is_bit_slice:
        fields["start"] = unsigned((2 * cfg.H_codes).bit_length())
    return data.StructLayout(fields)


def _rom(cfg: ExpConfig):
    tab = exp_table(cfg)
    rows = []
    for k in range(cfg.K + 2):
        idx = k if k <= cfg.K else -1  # row K: clamp, row K+1: zero (the lookup arrays' row -1)
        row = {"intercept": int(tab.lookup_intercepts[idx]), "slope": int(tab.lookup_slopes[idx])}
        if not cfg.index_is_bit_slice:
            row["start"] = int(tab.lookup_starts[idx])
        rows.append(row)
    layout = _row_layout(cfg)
    return TableRom([_pack(layout, row) for row in rows], layout.size)


def _pack(layout, row: dict) -> int:
    """``row`` (field values) as the integer of ``layout``'s bits."""
    return sum(int(row[name]) << field.offset for name, field in layout)


def range_mantissa_stages(pipe: Pipeline, z, cfg: ExpConfig, exponent=None):
    """The range-reduced method's mantissa (golden: :func:`spikeops.golden.exp.range_mantissa`):
    ``w = z * L`` (:data:`MULTIPLY_STAGES`), the table in two stages, ``d_k * t``
    (:data:`MULTIPLY_STAGES`) and ``m = c_k + ((d_k * t) >> tb)``, :data:`RANGE_MANTISSA_STAGES` in all.
    Return ``(m, x)``, aligned: ``m`` in ``[2**mant_frac, 2**(mant_frac+1))`` and ``x =
    exponent(n)`` (default ``n`` itself), formed as the table's first stage registers."""
    f, kb, tb = cfg.w_frac, cfg.index_bits, cfg.offset_bits
    w = multiply_stages(pipe, z, cfg.log2e_code).as_signed()
    n = w >> f
    low = f - kb
    r_low = w[:low]
    t = r_low[low - tb:] if low >= tb else (r_low << (tb - low))
    k = w[low:f] if kb else Const(0, 1)
    tab = range_table(cfg)
    cwidth, dwidth = cfg.mant_frac + 2, max(1, int(tab.diffs.max()).bit_length())
    # the table in two stages: 16-entry pieces indexed by k's low bits (one LUT4 per bit and piece),
    # registered, then the piece k's high bits name
    lo_bits = min(kb, TABLE_PIECE_BITS)
    k_lo, k_hi = (k[:lo_bits], k[lo_bits:]) if kb else (k, Const(0, 1))
    pieces = {}
    for j in range(max(1, cfg.K >> lo_bits)):
        rows = range(j << lo_bits, (j + 1) << lo_bits)
        pieces[f"c{j}"] = Array([Const(int(tab.mantissas[i]), unsigned(cwidth)) for i in rows])[k_lo]
        pieces[f"d{j}"] = Array([Const(int(tab.diffs[i]), unsigned(dwidth)) for i in rows])[k_lo]
    s3a = pipe.stage(**pieces, k_hi=k_hi, t=t[:tb] if tb else Const(0, 1),
                     x=n if exponent is None else exponent(n))
    npieces = len(pieces) // 2
    s3 = pipe.stage(c=Array([s3a[f"c{j}"] for j in range(npieces)])[s3a.k_hi],
                    d=Array([s3a[f"d{j}"] for j in range(npieces)])[s3a.k_hi], t=s3a.t, x=s3a.x)
    pipe.carry(exp_c=s3.c, exp_x=s3.x)
    p = multiply_stages(pipe, s3.d, s3.t)
    c, x = pipe.carried.pop("exp_c"), pipe.carried.pop("exp_x")
    s5 = pipe.stage(m=(c + (p >> tb))[:cfg.mant_frac + 1], x=x)
    return s5.m, s5.x


def _range_stages(pipe: Pipeline, z, cfg: ExpConfig):
    """The range-reduced method (module docstring); golden: ``spikeops.golden.exp._range_exp``."""
    hc = cfg.H_codes
    below, above = z < -hc, z >= hc
    s1 = pipe.stage(zc=Mux(below, -hc, Mux(above, hc, z)), below=below, above=above)
    pipe.carry(exp_below=s1.below, exp_above=s1.above)
    shift_width = max(1, (cfg.n_top - cfg.n_bottom).bit_length())
    m, sh = range_mantissa_stages(pipe, s1.zc, cfg, exponent=lambda n: (cfg.n_top - n)[:shift_width])
    below, above = pipe.carried.pop("exp_below"), pipe.carried.pop("exp_above")
    # the shift in two stages: by the high bits of ``sh`` first, then by the low ones with the clamps
    lo = (shift_width + 1) // 2
    s6 = pipe.stage(m=m >> (sh[lo:] << lo), sh=sh[:lo], below=below, above=above)
    y = (s6.m >> s6.sh)[:cfg.out_width]
    return pipe.stage(e=Mux(s6.below, 0, Mux(s6.above, cfg.one_code, y))).e


def exp_table_rom(cfg: ExpConfig):
    """The uniform method's table as a ROM (:class:`spikeops.hdl.rom.TableRom`; add it to a module)
    for :func:`exp_stages` to share: each call takes a read port of its own, so two pipelines read one
    block RAM through its two ports.  None for the range-reduced method (its table is logic)."""
    return None if cfg.method == ExpMethod.RANGE else _rom(cfg)


def exp_stages(pipe: Pipeline, z, cfg: ExpConfig, rom=None):
    """Add PWL-Exp to ``pipe`` (:func:`exp_latency` stages); return ``e`` (``u<out_width>.<out_frac>``),
    aligned.  ``rom``: a table from :func:`exp_table_rom` already in the design (default: a table of
    its own)."""
    if cfg.method == ExpMethod.RANGE:
        return _range_stages(pipe, z, cfg)
    m = pipe.m
    hc = cfg.H_codes
    if rom is None:
        rom = _rom(cfg)
        m.submodules[f"{pipe.name}_exp_rom_{pipe.latency}"] = rom
    rd = rom.read_port()
    layout = _row_layout(cfg)
    u_width = (2 * hc).bit_length()
    # the offset argument and the range tests registered, so that only the address multiplexer
    # sits between registers and the block RAM's address
    s0 = pipe.stage(u=(z + hc)[:u_width], below=z < -hc, above=z >= hc)
    u, below, above = s0.u, s0.below, s0.above
    if cfg.index_is_bit_slice:
        p = _offset_width(cfg)
        k, t = u[p:], u[:p]
    else:
        mult, s = index_multiplier(cfg)
        k, t = (u * mult) >> s, u
    addr = Mux(below, cfg.K + 1, Mux(above, cfg.K, k))
    m.d.comb += [rd.addr.eq(addr), rd.en.eq(pipe.enable)]
    s1 = pipe.stage(t=t)                       # the table reads its address
    s2 = pipe.stage(t=s1.t)                    # ... and its data leave a register (spikeops.hdl.rom)
    row = data.View(layout, rd.data)
    if cfg.index_is_bit_slice:
        offset = s2.t
    else:
        offset = (s2.t - row.start)[:_offset_width(cfg)]  # garbage only where the slope is 0
    s3 = pipe.stage(offset=offset, slope=row.slope, intercept=row.intercept)
    pipe.carry(exp_intercept=s3.intercept)
    p = multiply_stages(pipe, s3.slope, s3.offset, sum_stages=_product_sum_stages(cfg))
    return pipe.stage(e=(pipe.carried.pop("exp_intercept") + (p >> cfg.slope_shift))[:cfg.out_width]).e


class PWLExp(ConfigComponent):
    """Stream ``e**z``: ``i`` carries ``s<in_width>.<in_frac>`` arguments, ``o`` ``u<out_width>.<out_frac>``
    results, bit-identical to :func:`spikeops.golden.exp.pwl_exp` (latency :func:`exp_latency` plus the
    output register's 1, :func:`spikeops.hdl.pipeline.credit_latency`; II 1)."""

    class Signature(ConfigSignature):
        config_type = ExpConfig
        owner = "PWLExp"

        @classmethod
        def build_members(cls, config):
            return {"i": In(stream.Signature(signed(config.in_width))),
                    "o": Out(stream.Signature(unsigned(config.out_width)))}

        @classmethod
        def check_parameters(cls, config):
            super().check_parameters(config)
            if config.method == ExpMethod.UNIFORM and not config.index_is_bit_slice:
                index_multiplier(config)  # raises if no exact multiply-shift index exists

    @property
    def latency(self) -> int:
        return credit_latency(exp_latency(self.config))

    def elaborate(self, platform):
        m = Module()
        pipe = CreditPipeline(m, self.o, i=self.i, name="exp")
        pipe.finish(exp_stages(pipe, self.i.payload, self.config))
        return m
