"""Formal proofs of the stream contract (spikeops.verif.formal) with SymbiYosys.

The default suite runs one fast proof on a real operator, the row operators' reset inductions and
the structural ``valid_comb`` proof of every operator, and shows that the same property code catches
components built to break it.  Every operator x property (the row operators' quiet periods from any
reachable state: minutes each), and every broken component against every property it breaks, is
marked ``slow`` (``make test-slow`` or ``pytest -m slow tests/test_formal.py``).
"""

from __future__ import annotations

import pytest

pytest.importorskip("amaranth")

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikeops.hdl import pipeline, rowbuffer
from spikeops.hdl.claims import Claims
from spikeops.verif import formal

missing = formal.solver_available()
pytestmark = pytest.mark.skipif(missing is not None, reason=f"formal tools missing: {missing}")

#: the fast proof of the default suite: induction, closes in a few seconds
FAST = ("softmax", "hold")


class Register(wiring.Component):
    """A one-element stream register of 4-bit codes (the identity), correct unless ``bug`` says:

    ``comb_valid``  o.valid is gated by o.ready (a combinational path);
    ``unstable``    a stalled register takes the next input (payload changes before o.ready, the
                    held element is lost);
    ``drop``        i.ready is always 1, so an input arriving at a stall overwrites the held one;
    ``duplicate``   the valid bit is not cleared when the element is taken;
    ``reset_less``  the register survives a reset (an element from before the reset comes out);
    ``stuck``       the register fills but never presents its element.
    ``hidden``      the register fills, never presents its element and takes no other (its count
                    of what it holds stays right: only the quiet period's check catches it).
    """

    def __init__(self, bug: str | None = None):
        self.bug = bug
        self.claims = None
        super().__init__({"i": In(stream.Signature(signed(4))), "o": Out(stream.Signature(signed(4)))})

    def elaborate(self, platform):
        m = Module()
        bug = self.bug
        full = Signal(reset_less=bug == "reset_less")
        data = Signal(signed(4), reset_less=bug == "reset_less")
        free = ~full | (self.o.ready if bug != "hidden" else 0)
        m.d.comb += self.i.ready.eq(1 if bug == "drop" else free)
        load = self.i.valid & (1 if bug in ("drop", "unstable") else free)
        with m.If(load):
            m.d.sync += [full.eq(1), data.eq(self.i.payload)]
        with m.Elif(self.o.ready & (bug not in ("duplicate", "hidden"))):
            m.d.sync += full.eq(0)
        shown = 0 if bug in ("stuck", "hidden") else full & (self.o.ready if bug == "comb_valid" else 1)
        m.d.comb += [self.o.valid.eq(shown),
                     self.o.payload.eq(data)]
        self.claims = Claims(held=full)   # the element it holds, if full (spikeops.hdl.claims)
        return m


def register_target(bug=None, modes=None) -> formal.Target:
    """The :class:`Register` as a proof target: latency 1, f = identity (codes -8..7); ``modes``:
    the properties proved on its facts, and how (``formal.MODES``)."""
    table = tuple(c if c < 8 else c - 16 for c in range(16))
    return formal.Target(name=f"register-{bug or 'ok'}", make=lambda: Register(bug), latency=1,
                         table=table, key="tiny", modes=modes or {})


#: the properties each broken register must fail
BREAKS = [("comb_valid", "valid_comb"), ("unstable", "hold"), ("unstable", "order"), ("drop", "order"),
          ("drop", "no_drop"), ("duplicate", "order"), ("reset_less", "reset"), ("stuck", "no_drop")]


def test_fast_proof(tmp_path):
    op, prop = FAST
    r = formal.prove(formal.small_target(op), prop, root=tmp_path)
    assert r.passed, (r, r.log_tail())


@pytest.mark.parametrize("op", list(formal.SMALL))
def test_no_combinational_path_from_ready_to_valid(tmp_path, op):
    """valid_comb, structural and unbounded, for every operator (seconds each)."""
    r = formal.prove(formal.small_target(op), "valid_comb", root=tmp_path)
    assert r.passed and r.mode == "structural", (r, r.log_tail())


def test_a_combinational_valid_is_caught(tmp_path):
    r = formal.prove(register_target("comb_valid"), "valid_comb", root=tmp_path)
    assert not r.passed and r.status == "FAIL", (r, r.log_tail())


def test_broken_register_caught_fast(tmp_path):
    """The fast proof's property code fails on a register whose payload moves during a stall."""
    r = formal.prove(register_target("unstable"), "hold", root=tmp_path)
    assert not r.passed and r.status == "FAIL", r


@pytest.mark.parametrize("op", sorted(op for op, modes in formal.MODES.items() if modes.get("reset") == "prove"))
def test_reset_by_induction(tmp_path, op):
    """After a reset in any cycle no output of an earlier row appears, from any reachable state
    (induction on the component's facts, spikeops.hdl.claims; seconds each)."""
    r = formal.prove(formal.small_target(op), "reset", root=tmp_path)
    assert r.passed and r.mode == "prove", (r, r.log_tail())


@pytest.mark.slow
@pytest.mark.parametrize("op,send", [("rmsnorm", "y"), ("layernorm", "y"), ("softmax", "q")])
def test_order_induction_catches_an_inverted_row_end(tmp_path, monkeypatch, op, send):
    """An operator whose send pipeline carries each element's ``last`` inverted (every count and
    the send pass's facts stay right): the order induction does not pass it, and names the place
    where the tagged element's row end is wrong."""
    real = pipeline.Pipeline.carry

    def inverted(self, **values):
        if self.name == send and "last" in values:
            values["last"] = ~values["last"]
        real(self, **values)

    monkeypatch.setattr(pipeline.Pipeline, "carry", inverted)
    r = formal.prove(formal.small_target(op), "order", root=tmp_path)
    assert r.mode == "prove" and not r.passed, (r, r.log_tail())
    assert any("stage 1's last is the tagged input's" in t for t in r.failed_assertions()), r


def test_zero_refused_where_no_input_answers_zero(tmp_path):
    with pytest.raises(ValueError, match="'zero' does not apply to layernorm"):
        formal.prove(formal.small_target("layernorm"), "zero", root=tmp_path)


@pytest.mark.parametrize("arch,states", [
    ("thermometer", [True, True, True, False, False, True, True, True]),
    ("binary", [True, True, True, False, False, True, False, False])])
def test_the_division_states_what_its_own_stages_hold_for_a_zero_dividend(monkeypatch, arch, states):
    """:func:`spikeops.hdl.division.zero_dividend` knows the division's stages by the span it
    recorded: the scaling stages holding A and B, the membrane's and the thermometer's neurons
    state a value, the shift stages and the binary neurons none, a stage outside the division none.
    A norm's zero harness builds with either division (the norms' facts once read the thermometer's
    registers by name, and the binary one's neurons raised KeyError)."""
    from amaranth.back import rtlil
    from amaranth.hdl import Const, Fragment

    from spikeops.golden.division import DivisionConfig
    from spikeops.hdl.division import division_stages, zero_dividend

    m = Module()
    pipe = pipeline.Pipeline(m, Const(1), Signal())
    pipe.stage(x=Signal(4))                               # a stage before the division
    cfg = DivisionConfig(num_width=6, den_width=4, q_width=3, shift=2, arch=arch)
    division_stages(pipe, Signal(6), Signal(4), cfg, neurons_per_stage=2, leading_one_stages=2)
    assert pipe.spans["division"] == range(1, pipe.latency)
    zero = zero_dividend(pipe, lambda r: Const(1))
    stated = [zero(s, {**f, **c}) is not None for s, (f, c) in enumerate(zip(pipe.stage_fields, pipe.stage_carried))]
    assert stated == [False] + states
    Fragment.get(m, None)                                 # elaborated: no unused-module warnings

    monkeypatch.setitem(formal.SMALL, "rmsnorm", dict(formal.SMALL["rmsnorm"], div_arch=arch))
    h = formal.Harness(formal.small_target("rmsnorm"), "zero", mode="prove")
    rtlil.convert(h, name="top", ports=[], emit_src=False, platform="formal")
    assert h.depth > formal.INDUCTION_DEPTH          # the runs of stages that state nothing


def test_reset_induction_catches_a_pass_that_survives_reset(tmp_path, monkeypatch):
    """A send pass whose state survives a reset (it would read a row from before the reset) fails
    the induction: the facts it breaks are named."""
    real = rowbuffer.Signal

    def stale(*args, name=None, **kwargs):
        if name is not None and name.endswith(("_busy", "_left")):
            kwargs["reset_less"] = True
        return real(*args, name=name, **kwargs)

    monkeypatch.setattr(rowbuffer, "Signal", stale)
    r = formal.prove(formal.small_target("rmsnorm"), "reset", root=tmp_path)
    assert not r.passed, r
    assert any("a busy pass has" in t for t in r.failed_assertions()), r


@pytest.mark.parametrize("bug,status", [(None, "PASS"), ("reset_less", "FAIL")])
def test_register_reset_by_induction(tmp_path, bug, status):
    """The induction's harness on the register: the correct one passes, the one that keeps its
    element through a reset fails (a counterexample from the initial state)."""
    r = formal.prove(register_target(bug, modes={"reset": "prove"}), "reset", root=tmp_path)
    assert r.mode == "prove" and r.status == status, (r, r.log_tail())


def test_reach_refuses_a_depth_short_of_the_quiet_period(tmp_path):
    """A proof from any reachable state whose depth ends before the quiet period would pass
    without checking anything: refused, naming the depth and what is allowed."""
    target = formal.small_target("rmsnorm")
    with pytest.raises(ValueError, match=rf"depth=10 .* allowed: at least {target.quiet() + 1}"):
        formal.prove(target, "no_drop", mode="reach", depth=10, root=tmp_path)


@pytest.mark.slow
def test_quiet_period_catches_a_send_pass_that_never_starts(tmp_path, monkeypatch):
    """RMSNorm whose send pass never takes a row: its facts still hold (the rows stay counted), so
    only the quiet period's check from a reachable state can catch it, and does."""
    real = rowbuffer.RingPass.__init__

    def never(self, m, buf, port, queue, layout, *, advance=1, allow=1, name):
        real(self, m, buf, port, queue, layout, advance=advance, allow=0 if name == "s" else allow, name=name)

    monkeypatch.setattr(rowbuffer.RingPass, "__init__", never)
    r = formal.prove(formal.small_target("rmsnorm"), "no_drop", root=tmp_path)
    assert r.mode == "reach" and r.status == "FAIL", (r, r.log_tail())


def _send_pass_reads_ahead(monkeypatch):
    """Every operator's send pass (the ring pass named ``s``) reads the ring one entry ahead; every
    count and fact about where elements are still holds."""
    real = rowbuffer.RingPass.__init__

    class Ahead:
        def __init__(self, buf):
            self.buf, self.depth = buf, buf.depth

        def read(self, m, addr, en, port=0):
            self.buf.read(m, Mux(addr == self.depth - 1, 0, addr + 1), en, port=port)

    def ahead(self, m, buf, port, queue, layout, *, advance=1, allow=1, name):
        real(self, m, Ahead(buf) if name == "s" else buf, port, queue, layout, advance=advance, allow=allow, name=name)

    monkeypatch.setattr(rowbuffer.RingPass, "__init__", ahead)


@pytest.mark.slow
@pytest.mark.parametrize("op", ["rmsnorm", "softmax"])
def test_zero_induction_catches_a_send_pass_reading_the_wrong_entry(tmp_path, monkeypatch, op):
    """A send pass that reads the ring one entry ahead: every count and fact holds (RMSNorm's
    reset induction passes), so only the k-th element's value can show that the k-th output
    answers another element.  The ``zero`` induction does not pass, and names the place where the
    tagged input's zero (RMSNorm) or mask (Softmax) is lost: the buffer's output register at send
    stage 2, which holds the entry after it."""
    _send_pass_reads_ahead(monkeypatch)
    target = formal.small_target(op)
    if op == "rmsnorm":
        facts = formal.prove(target, "reset", root=tmp_path)
        assert facts.passed and facts.mode == "prove", facts
    r = formal.prove(target, "zero", root=tmp_path)
    assert r.mode == "prove" and not r.passed, (r, r.log_tail())
    assert any(t.startswith("zero: stage 2 ") for t in r.failed_assertions()), r


@pytest.mark.parametrize("bug,mode,status", [(None, "reach", "PASS"), ("hidden", "reach", "FAIL"),
                                             ("stuck", "reach: its facts' induction failed (FAIL)", "FAIL")])
def test_register_quiet_period_from_any_reachable_state(tmp_path, bug, mode, status):
    """``no_drop`` from any state the facts allow: the correct register empties in the quiet
    period; the one that hides its element does not (a counterexample from a full one); the one
    that drops it breaks its facts, so the proof stops at their induction."""
    r = formal.prove(register_target(bug, modes={"no_drop": "reach"}), "no_drop", root=tmp_path)
    assert r.mode == mode and r.status == status, (r, r.log_tail())


@pytest.mark.slow
@pytest.mark.parametrize("prop", [p for p in formal.PROPERTIES if p != "zero"])  # no input answers 0 alone
def test_correct_register_passes(tmp_path, prop):
    """No false alarm: the correct register passes every property."""
    r = formal.prove(register_target(), prop, root=tmp_path, depth=12)
    assert r.passed, (r, r.log_tail())


@pytest.mark.slow
@pytest.mark.parametrize("bug,prop", BREAKS)
def test_broken_register_caught(tmp_path, bug, prop):
    """Each broken register fails the property it breaks (a check that cannot fail is a defect)."""
    r = formal.prove(register_target(bug), prop, root=tmp_path, depth=12)
    assert not r.passed and r.status == "FAIL", r


@pytest.mark.slow
@pytest.mark.parametrize("prop", [p for p in formal.PROPERTIES if p != "valid_comb"])  # default suite: above
@pytest.mark.parametrize("op", list(formal.SMALL))
def test_operator_property(tmp_path, op, prop):
    target = formal.small_target(op)
    if target.reachable(prop):
        pytest.skip(target.reachable(prop))
    r = formal.prove(target, prop, root=tmp_path)
    assert r.passed and r.mode == target.mode(prop), (r, r.log_tail())
