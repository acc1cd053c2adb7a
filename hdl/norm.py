"""PolarNorm in hardware (twin of ``golden/norm.py``): the CORDIC merge tree, or the exact norm.

``i`` streams the ``length`` unsigned ``in_width``-bit leaves of a vector (framed by count);
``o`` gives ``N`` (``u<out_width>``), bit-identical to :func:`spikeops.golden.norm.polar_norm`.

CORDIC: one fully pipelined vectoring unit (``iterations`` stages, one merge per cycle) serves every
level of the tree.  Level 0 pairs the incoming leaves (shifted left by ``guard_bits``) in arrival
order; level ``l + 1`` reads level ``l``'s results back from a scratch buffer in index order; a level
with an odd count pairs its last value with 0, exactly the zero padding of the specification.
Cycles per vector: ``sum_l (L_l + iterations + 3)`` with ``L_0 = length``, ``L_(l+1) = ceil(L_l / 2)``.

Exact: ``sum (leaf << guard_bits)**2`` accumulated as the leaves arrive, then a digit-by-digit
integer square root, one result bit per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.norm import NormConfig

from .component import ConfigComponent, ConfigSignature
from .rowbuffer import RowBuffer

__all__ = ["PolarNorm", "level_sizes"]


def level_sizes(cfg: NormConfig) -> list[int]:
    """Values entering each level: ``L_0 = length``, ``L_(l+1) = ceil(L_l / 2)`` (``levels`` of them)."""
    sizes, n = [], cfg.length
    for _ in range(cfg.levels):
        sizes.append(n)
        n = (n + 1) // 2
    return sizes


class PolarNorm(ConfigComponent):
    """Streaming l2 norm of ``length`` leaves (one :class:`spikeops.golden.norm.NormConfig`)."""

    class Signature(ConfigSignature):
        config_type = NormConfig
        owner = "PolarNorm"

        @classmethod
        def build_members(cls, config):
            return {"i": In(stream.Signature(unsigned(config.in_width))),
                    "o": Out(stream.Signature(unsigned(config.out_width)))}

    def elaborate(self, platform):
        m = Module()
        if self.config.method == "exact":
            self._exact(m, self.config)
        else:
            self._cordic(m, self.config)
        return m

    # -- exact: sum of squares and a digit-by-digit square root ---------------------------------
    def _exact(self, m, cfg):
        acc_w = cfg.datapath_width
        acc = Signal(unsigned(acc_w))
        count = Signal(range(cfg.length + 1))
        root_bits = (acc_w + 1) // 2
        num = Signal(unsigned(acc_w))
        res = Signal(unsigned(2 * root_bits))  # holds res + bit while iterating
        bit = Signal(unsigned(2 * root_bits))
        leaf = self.i.payload << cfg.guard_bits
        with m.FSM(name="norm"):
            with m.State("ACCUMULATE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    total = acc + leaf * leaf
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == cfg.length - 1):
                        m.d.sync += [num.eq(total), res.eq(0), bit.eq(1 << (2 * (root_bits - 1))),
                                     acc.eq(0), count.eq(0)]
                        m.next = "ROOT"
                    with m.Else():
                        m.d.sync += acc.eq(total)
            with m.State("ROOT"):
                with m.If(bit == 0):
                    m.next = "OUTPUT"
                with m.Elif(num >= res + bit):
                    m.d.sync += [num.eq(num - (res + bit)), res.eq((res >> 1) + bit), bit.eq(bit >> 2)]
                with m.Else():
                    m.d.sync += [res.eq(res >> 1), bit.eq(bit >> 2)]
            with m.State("OUTPUT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(res)]
                with m.If(self.o.ready):
                    m.next = "ACCUMULATE"

    # -- CORDIC tree ----------------------------------------------------------------------------
    def _cordic(self, m, cfg):
        w = cfg.datapath_width
        n_it = cfg.iterations
        result = Signal(unsigned(cfg.out_width))
        if cfg.levels == 0:  # a single leaf: N = leaf << guard_bits
            with m.FSM(name="norm"):
                with m.State("TAKE"):
                    m.d.comb += self.i.ready.eq(1)
                    with m.If(self.i.valid):
                        m.d.sync += result.eq(self.i.payload << cfg.guard_bits)
                        m.next = "OUTPUT"
                with m.State("OUTPUT"):
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(result)]
                    with m.If(self.o.ready):
                        m.next = "TAKE"
            return

        sizes = level_sizes(cfg)
        depth = max(1, (cfg.length + 1) // 2)
        scratch = [RowBuffer(m, f"scratch{j}", signed(w), depth) for j in range(2)]

        # the vectoring pipeline: stage k applies iteration k; always enabled
        issue = Signal()
        a_in = Signal(signed(w))
        b_in = Signal(signed(w))
        widx = Signal(range(depth + 1))          # index of the next result at the next level
        a, b, valid, tag = a_in, b_in, issue, widx
        for k in range(n_it):
            a_r, b_r = Signal(signed(w), name=f"cordic{k}_a"), Signal(signed(w), name=f"cordic{k}_b")
            v_r, t_r = Signal(name=f"cordic{k}_valid"), Signal(range(depth + 1), name=f"cordic{k}_tag")
            s = b >= 0
            da, db = b >> k, a >> k
            m.d.sync += [a_r.eq(Mux(s, a + da, a - da)), b_r.eq(Mux(s, b - db, b + db)),
                         v_r.eq(valid), t_r.eq(tag)]
            a, b, valid, tag = a_r, b_r, v_r, t_r
        merged, merged_valid, merged_tag = a, valid, tag

        level = Signal(range(max(2, cfg.levels)))
        level_size = Array(Const(sz, range(cfg.length + 1)) for sz in sizes)[level]
        last_level = level == cfg.levels - 1
        taken = Signal(range(cfg.length + 1))    # values of this level consumed so far
        left = Signal(signed(w))
        have_left = Signal()
        rd = Signal(range(cfg.length + 1))
        rd_valid = Signal()
        drain = Signal(range(n_it + 3))

        # results: to the scratch buffer of the next level, or the root to the output
        for j in range(2):
            scratch[j].write(m, merged_tag, merged, merged_valid & ~last_level & (level[0] == j))
        with m.If(merged_valid & last_level):
            m.d.sync += result.eq(merged)

        # a value of the current level arrives: pair it, or keep it as the left element
        incoming = Signal(signed(w))
        incoming_valid = Signal()
        with m.If(incoming_valid):
            m.d.sync += taken.eq(taken + 1)
            with m.If(have_left):
                m.d.comb += [a_in.eq(left), b_in.eq(incoming), issue.eq(1)]
                m.d.sync += [have_left.eq(0), widx.eq(widx + 1)]
            with m.Else():
                m.d.sync += [left.eq(incoming), have_left.eq(1)]

        with m.FSM(name="norm"):
            with m.State("LEVEL0"):
                m.d.comb += [self.i.ready.eq(1), incoming.eq(self.i.payload << cfg.guard_bits),
                             incoming_valid.eq(self.i.valid)]
                with m.If(self.i.valid & (taken == sizes[0] - 1)):
                    m.next = "FLUSH"
            with m.State("READ"):  # levels >= 1: read the previous level's results in order
                for j in range(2):
                    with m.If(level[0] != j):
                        scratch[j].read(m, rd, 1)
                m.d.sync += rd_valid.eq(rd < level_size)
                with m.If(rd < level_size):
                    m.d.sync += rd.eq(rd + 1)
                src = Mux(level[0], scratch[0].data, scratch[1].data)
                m.d.comb += [incoming.eq(src), incoming_valid.eq(rd_valid)]
                with m.If(rd_valid & (taken == level_size - 1)):
                    m.next = "FLUSH"
            with m.State("FLUSH"):  # an odd level pairs its last value with the zero padding
                with m.If(have_left):
                    m.d.comb += [a_in.eq(left), b_in.eq(0), issue.eq(1)]
                    m.d.sync += [have_left.eq(0), widx.eq(widx + 1)]
                m.d.sync += [drain.eq(0), rd_valid.eq(0)]
                m.next = "DRAIN"
            with m.State("DRAIN"):  # wait until every merge of this level has left the pipeline
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == n_it):
                    m.d.sync += [taken.eq(0), rd.eq(0), widx.eq(0)]
                    with m.If(last_level):
                        m.d.sync += level.eq(0)
                        m.next = "OUTPUT"
                    with m.Else():
                        m.d.sync += level.eq(level + 1)
                        m.next = "READ"
            with m.State("OUTPUT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(result)]
                with m.If(self.o.ready):
                    m.next = "LEVEL0"
