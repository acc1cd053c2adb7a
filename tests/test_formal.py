"""Formal proofs of the stream contract (spikeops.verif.formal) with SymbiYosys.

The default suite runs one fast proof on a real operator and shows that the same property code
catches a component built to break it, and the structural ``valid_comb`` proof of every operator; every operator x property, and every broken component
against every property it breaks, is marked ``slow`` (``make test-slow`` or
``pytest -m slow tests/test_formal.py``).
"""

from __future__ import annotations

import pytest

pytest.importorskip("amaranth")

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

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
    """

    def __init__(self, bug: str | None = None):
        self.bug = bug
        super().__init__({"i": In(stream.Signature(signed(4))), "o": Out(stream.Signature(signed(4)))})

    def elaborate(self, platform):
        m = Module()
        bug = self.bug
        full = Signal(reset_less=bug == "reset_less")
        data = Signal(signed(4), reset_less=bug == "reset_less")
        free = ~full | self.o.ready
        m.d.comb += self.i.ready.eq(1 if bug == "drop" else free)
        load = self.i.valid & (1 if bug in ("drop", "unstable") else free)
        with m.If(load):
            m.d.sync += [full.eq(1), data.eq(self.i.payload)]
        with m.Elif(self.o.ready & (bug != "duplicate")):
            m.d.sync += full.eq(0)
        shown = 0 if bug == "stuck" else full & (self.o.ready if bug == "comb_valid" else 1)
        m.d.comb += [self.o.valid.eq(shown),
                     self.o.payload.eq(data)]
        return m


def register_target(bug=None) -> formal.Target:
    """The :class:`Register` as a proof target: latency 1, f = identity (codes -8..7)."""
    table = tuple(c if c < 8 else c - 16 for c in range(16))
    return formal.Target(name=f"register-{bug or 'ok'}", make=lambda: Register(bug), latency=1,
                         table=table, key="tiny")


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


@pytest.mark.slow
@pytest.mark.parametrize("prop", formal.PROPERTIES)
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
    assert r.passed, (r, r.log_tail())
