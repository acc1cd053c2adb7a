"""Lattice ECP5's ``DP16KD`` block RAM, instantiated with its output register on.

One ``DP16KD`` holds 18 Kbit and has two ports, A and B, each with its own address, clock enable
``CE`` (the read enters the block's data latch), output clock enable ``OCE`` (the latch enters the
output register, ``REGMODE "OUTREG"``: 0.97 ns from the clock to the data at speed grade 6, against
5.83 ns from the latch) and write enable ``WE``.  The modes used here give both ports the same
width (``DATA_WIDTH``), one of :data:`DP16KD_MODES`: 1,024 words of 18 bits, 2,048 of 9, 4,096 of
4, 8,192 of 2 or 16,384 of 1.  A word address sits on the high bits of the 14-bit ``AD`` bus
(``AD[13:4]`` at 18 bits, ``AD[13:3]`` at 9, ``AD[13:2]`` at 4, ``AD[13:1]`` at 2, all of it at 1),
as Yosys places it when it infers the block; at 18 bits ``AD[1:0]`` are the write's byte enables,
both set on a written port.  Data use the low ``DATA_WIDTH`` bits of ``DI``/``DO``.

Yosys synthesises the primitive from its own black box; the simulators read ``ecp5_dp16kd.v``
beside this file, a behavioural model of these modes (Yosys ships only the black box).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Const, Instance, Value

__all__ = ["DP16KD_MODES", "DP16KD_WIDTH", "DP16KDPort", "dp16kd_mode", "dp16kd", "dp16kd_initvals"]

#: word width -> words of one DP16KD in that mode
DP16KD_MODES = {18: 1024, 9: 2048, 4: 4096, 2: 8192, 1: 16384}
#: the widest mode (the one whose contents :func:`dp16kd_initvals` lays out)
DP16KD_WIDTH = 18


def dp16kd_mode(depth: int) -> int | None:
    """The widest :data:`DP16KD_MODES` word width holding ``depth`` words in one block (so the
    fewest blocks side by side for a given data width), or ``None`` above 16,384 words."""
    fits = [w for w, words in DP16KD_MODES.items() if words >= depth]
    return max(fits) if fits else None


def dp16kd_initvals(words) -> dict[str, int]:
    """The ``INITVAL_00`` .. ``INITVAL_3F`` parameters of a DP16KD in its 1,024 x 18 mode holding
    ``words`` (18-bit integers, at most 1,024; the rest zero): each 320-bit value holds 16 words,
    word ``16 j + i`` in bits ``[20 i + 17 : 20 i]`` of ``INITVAL_j`` (two pad bits per word)."""
    depth = DP16KD_MODES[DP16KD_WIDTH]
    words = list(words)
    if len(words) > depth or any(not 0 <= w < 1 << DP16KD_WIDTH for w in words):
        raise ValueError(f"dp16kd_initvals: at most {depth} words of {DP16KD_WIDTH} bits are allowed")
    words += [0] * (depth - len(words))
    params = {}
    for j in range(depth // 16):
        value = 0
        for i in range(16):
            value |= words[16 * j + i] << (20 * i)
        params[f"INITVAL_{j:02X}"] = value
    return params


@dataclass
class DP16KDPort:
    """What one side of a block is wired to: a word ``addr``, the enables, the write data ``di``
    (``None``: a read-only port) and ``do``, a signal of at least the mode's width (``None``: the
    data are not read)."""

    addr: Value
    ce: Value | int
    oce: Value | int = 1
    we: Value | int = 0
    di: Value | None = None
    do: Value | None = None


def dp16kd(width: int, a: DP16KDPort | None, b: DP16KDPort | None, initvals: dict | None = None) -> Instance:
    """One ``DP16KD`` in the ``width``-bit mode with ``REGMODE "OUTREG"`` on both sides, ports
    ``a`` and ``b`` (``None``: a side tied low), contents ``initvals`` (:func:`dp16kd_initvals`;
    18-bit mode only) or zero."""
    if width not in DP16KD_MODES:
        raise ValueError(f"dp16kd: width {width} is not allowed; allowed: {sorted(DP16KD_MODES)}")
    if initvals and width != DP16KD_WIDTH:
        raise ValueError(f"dp16kd: contents are only laid out for width {DP16KD_WIDTH}, not {width}")
    shift = {18: 4, 9: 3, 4: 2, 2: 1, 1: 0}[width]
    conns = {}
    for side, p in (("A", a), ("B", b)):
        addr = Value.cast(p.addr) if p is not None else Const(0, 1)
        writes = p is not None and p.di is not None
        low = [Const(int(writes)), Const(int(writes)), Const(0), Const(0)] if width == 18 else [Const(0)] * shift
        bus = low[:shift] + [addr[k] if k < len(addr) else Const(0) for k in range(14 - shift)]
        conns.update({f"i_AD{side}{k}": bus[k] for k in range(14)})
        di = Value.cast(p.di) if p is not None and p.di is not None else Const(0, 1)
        conns.update({f"i_DI{side}{k}": di[k] if k < min(width, len(di)) else Const(0) for k in range(18)})
        if p is not None and p.do is not None:
            conns.update({f"o_DO{side}{k}": p.do[k] for k in range(min(18, len(p.do)))})
        conns.update({f"i_CLK{side}": ClockSignal() if p is not None else Const(0),
                      f"i_CE{side}": Value.cast(p.ce) if p is not None else Const(0),
                      f"i_OCE{side}": Value.cast(p.oce) if p is not None else Const(0),
                      f"i_WE{side}": Value.cast(p.we) if p is not None else Const(0),
                      f"i_RST{side}": Const(0), **{f"i_CS{side}{k}": Const(0) for k in range(3)}})
    params = {f"p_{k}": Const(v, 320) for k, v in (initvals or {}).items()}
    modes = {f"p_{k}_{s}": v for s in "AB" for k, v in
             (("DATA_WIDTH", width), ("REGMODE", "OUTREG"), ("CSDECODE", "0b000"), ("WRITEMODE", "NORMAL"))}
    return Instance("DP16KD", p_GSR="DISABLED", p_RESETMODE="SYNC", **modes, **params, **conns)
