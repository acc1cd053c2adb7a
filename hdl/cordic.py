"""The CORDIC merge unit of the PolarNorm tree, in hardware (twin of
:func:`spikeops.golden.norm.merge`): a pipeline that takes one pair of block-floating nodes a cycle
and gives their merged node ``iterations + 2`` cycles later (:data:`UNIT_EXTRA`).

A pair enters as its *fields* (:func:`merge_fields`), registered at the unit's input by the caller:
the two ``width``-bit mantissas, each one's alignment shift ``max(E - e, 0)`` (its low bits and a
flag for a shift past the mantissa), ``E = max(e_a, e_b)`` and the zero test.  The unit then
registers the aligned operands ``(m << guard_bits) >> shift`` (floor), runs the ``iterations``
vectoring steps ``a' = a + s (b >> k)``, ``b' = b - s (a >> k)`` (``s`` = the sign of ``b``; each
variable's step one add-or-subtract chain, :mod:`spikeops.hdl.carry`; the first step has
``b >= 0``) and normalises ``a`` back to ``width`` bits in the last one, so the result leaves from a
register.  A *tag* (the pair's level, one-hot, in the shared tree) travels with each pair.

Number format: signed ``datapath_width``-bit registers (aligned operands below
``2**(width + guard_bits)``, results below four times that); results ``(m, e)`` as
:func:`spikeops.hdl.norm.node_layout`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed, unsigned

from spikeops.golden.norm import NormConfig

from .carry import add_or_subtract

__all__ = ["UNIT_EXTRA", "UnitOutput", "field_shapes", "difference_shapes", "pair_differences", "fields_of_differences",
           "merge_fields", "zero_pair_fields", "cordic_unit"]

#: stages of the unit beyond its ``iterations`` vectoring steps: the fields' input register (the
#: pair's issue) and the aligned operands' register
UNIT_EXTRA = 2


def _shift_bits(cfg: NormConfig) -> int:
    """Bits of an alignment shift below ``width + guard_bits`` (from there on the operand is 0)."""
    return (cfg.width + cfg.guard_bits - 1).bit_length()


def field_shapes(cfg: NormConfig) -> dict:
    """The shapes of a pair's fields (the unit's input registers)."""
    w, sbits = cfg.width, _shift_bits(cfg)
    return {"m_a": unsigned(w), "m_b": unsigned(w), "s_a": unsigned(sbits), "far_a": 1,
            "s_b": unsigned(sbits), "far_b": 1, "e": signed(cfg.exp_width), "zero": 1}


def difference_shapes(cfg: NormConfig) -> dict:
    """The shapes of a pair's differences (:func:`pair_differences`)."""
    w, diff = cfg.width, signed(cfg.exp_width + 1)
    return {"m_a": unsigned(w), "m_b": unsigned(w), "d_ab": diff, "d_ba": diff, "e": signed(cfg.exp_width),
            "zero": 1}


def pair_differences(m, a, b, cfg: NormConfig, prefix: str = "") -> dict:
    """The first half of :func:`merge_fields`: the mantissas, the exponents' differences both ways
    (two carry chains side by side), ``E = max(e_a, e_b)`` and the zero test (nodes are normalised,
    the mantissa's top bit set, or the zero node)."""
    diff = signed(cfg.exp_width + 1)
    d_ab, d_ba = Signal(diff, name=f"{prefix}d_ab"), Signal(diff, name=f"{prefix}d_ba")
    m.d.comb += [d_ab.eq(a.e - b.e), d_ba.eq(b.e - a.e)]
    return {"m_a": a.m, "m_b": b.m, "d_ab": d_ab, "d_ba": d_ba, "e": Mux(d_ab[-1], b.e, a.e),
            "zero": ~(a.m[-1] | b.m[-1])}


def fields_of_differences(d: dict, cfg: NormConfig) -> dict:
    """The second half of :func:`merge_fields`: each mantissa's shift ``max(E - e, 0)`` as its low
    bits and a flag for ``>= 2**bits`` (no compare with ``width + guard_bits``: a shift from there
    to ``2**bits - 1`` gives 0 as well), from the differences (no carry chain)."""
    sbits = _shift_bits(cfg)

    def amount(diff):
        du = Value.cast(diff).as_unsigned()
        far = ~du[-1] & du[sbits:len(du) - 1].any() if len(du) - 1 > sbits else Const(0, 1)
        return Mux(du[-1], 0, du[:sbits]), far

    s_a, far_a = amount(d["d_ba"])
    s_b, far_b = amount(d["d_ab"])
    return {"m_a": d["m_a"], "m_b": d["m_b"], "s_a": s_a, "far_a": far_a, "s_b": s_b, "far_b": far_b,
            "e": d["e"], "zero": d["zero"]}


def merge_fields(m, a, b, cfg: NormConfig, prefix: str = "") -> dict:
    """The fields of the pair ``(a, b)`` (nodes with ``m`` and ``e``): the mantissas, each one's
    shift ``max(E - e, 0)`` (:func:`fields_of_differences`), ``E``, and the zero test
    (:func:`pair_differences`)."""
    return fields_of_differences(pair_differences(m, a, b, cfg, prefix), cfg)


def zero_pair_fields(node, node_zero) -> dict:
    """The fields of ``(node, zero node)`` (a level's odd last node): ``b`` shifted out whole."""
    return {"m_a": node.m, "m_b": 0, "s_a": 0, "far_a": 0, "s_b": 0, "far_b": 1, "e": node.e, "zero": node_zero}


@dataclass
class UnitOutput:
    """What :func:`cordic_unit` gives: the result ``res`` (a node register) with ``zero`` (it is the
    zero node), ``valid`` and ``tag``; ``stages`` holds every stage's ``(valid, tag)`` in order, the
    input register's first and the result's last (so ``stages[-2]`` is next cycle's result)."""

    res: Value
    zero: Value
    valid: Value
    tag: Value
    stages: list


def cordic_unit(m, cfg: NormConfig, fields: dict, valid, tag, res, prefix: str = "") -> UnitOutput:
    """Add the unit's stages after its input registers ``fields`` (:func:`field_shapes`), ``valid``
    and ``tag`` to module ``m``; ``res`` is the result's node register (the caller's layout); ``prefix`` starts the
    names of its signals."""
    w, g, n_it, dw = cfg.width, cfg.guard_bits, cfg.iterations, cfg.datapath_width
    span = w + g                               # (m << g) >> s is 0 from s = span on
    stages = [(valid, tag)]

    def aligned(mant, sh, far, label):
        out = Signal(signed(dw), name=f"{prefix}{label}")    # non-negative, below 2**span
        m.d.comb += out.eq(Mux(far, 0, (Cat(Const(0, g), mant) >> sh)[:span]))
        return out

    a = aligned(fields["m_a"], fields["s_a"], fields["far_a"], "aligned_a")
    b = aligned(fields["m_b"], fields["s_b"], fields["far_b"], "aligned_b")
    # the aligned operands registered: the shifters (a LUT level a shift bit) and the first
    # step's carry chain in one cycle would hold the clock near 110 MHz on ECP5
    a_r, b_r = Signal(signed(dw), name=f"{prefix}aligned_a_r"), Signal(signed(dw), name=f"{prefix}aligned_b_r")
    e_r, z_r = Signal(signed(cfg.exp_width), name=f"{prefix}aligned_e"), Signal(name=f"{prefix}aligned_zero")
    v_r, t_r = Signal(name=f"{prefix}aligned_valid"), Signal(len(tag), name=f"{prefix}aligned_tag")
    m.d.sync += [a_r.eq(a), b_r.eq(b), e_r.eq(fields["e"]), z_r.eq(fields["zero"]), v_r.eq(valid), t_r.eq(tag)]
    stages.append((v_r, t_r))
    a, b, e_big, zero_pair, valid, tag = a_r, b_r, e_r, z_r, v_r, t_r

    def normalised(a, es, zero):
        """``a`` (``w+g``, ``w+g+1`` or ``w+g+2`` bits unless both inputs were 0) to ``w`` bits;
        ``es``: ``E``, ``E + 1``, ``E + 2`` (registered, so no adder after this one)."""
        au = a.as_unsigned()
        t = Mux(au[w + g + 1], 2, Mux(au[w + g], 1, 0))
        e = Mux(au[w + g + 1], es[2], Mux(au[w + g], es[1], es[0]))
        return Mux(zero, 0, (au >> (g + t))[:w]), Mux(zero, cfg.zero_exp, e)

    res_zero = Signal(name=f"{prefix}result_zero")  # res is the zero node
    for k in range(n_it):
        e_r, z_r = Signal(signed(cfg.exp_width), name=f"{prefix}cordic{k}_e"), Signal(name=f"{prefix}cordic{k}_zero")
        v_r, t_r = Signal(name=f"{prefix}cordic{k}_valid"), Signal(len(tag), name=f"{prefix}cordic{k}_tag")
        if k == 0:                             # a, b >= 0: s = +1
            a_next, b_next = a + b, b - a
        else:
            # s = +1 when b >= 0: a + (b >> k) and b - (a >> k), else a - (b >> k) and
            # b + (a >> k); each one add-or-subtract chain taking b's sign (modulo 2**dw, as
            # the stage registers keep dw bits)
            da, db = Signal(signed(dw), name=f"{prefix}cordic{k}_da"), Signal(signed(dw), name=f"{prefix}cordic{k}_db")
            m.d.comb += [da.eq(b >> k), db.eq(a >> k)]
            a_next = add_or_subtract(m, a, da, b[-1], dw, f"{prefix}cordic{k}_a_step").as_signed()
            if k < n_it - 1:                   # the last step needs only a
                b_next = add_or_subtract(m, b, db, b[-1], dw, f"{prefix}cordic{k}_b_step", subtract_when=0).as_signed()
        m.d.sync += [v_r.eq(valid), t_r.eq(tag)]
        if k == n_it - 1:
            es = e_plus if n_it > 1 else [e_big, e_big + 1, e_big + 2]
            rm, re = normalised(a_next[:dw].as_signed(), es, zero_pair)
            m.d.sync += [res.m.eq(rm), res.e.eq(re), res_zero.eq(zero_pair)]
        else:
            a_r, b_r = Signal(signed(dw), name=f"{prefix}cordic{k}_a"), Signal(signed(dw), name=f"{prefix}cordic{k}_b")
            m.d.sync += [a_r.eq(a_next), b_r.eq(b_next), e_r.eq(e_big), z_r.eq(zero_pair)]
            if k == n_it - 2:                  # E + 1 and E + 2 for the last stage
                e_plus = [e_r] + [Signal(signed(cfg.exp_width), name=f"{prefix}cordic{k}_e{t}") for t in (1, 2)]
                m.d.sync += [e_plus[1].eq(e_big + 1), e_plus[2].eq(e_big + 2)]
            a, b, e_big, zero_pair = a_r, b_r, e_r, z_r
        valid, tag = v_r, t_r
        stages.append((valid, tag))
    return UnitOutput(res=res, zero=res_zero, valid=valid, tag=tag, stages=stages)
