"""What a stream component's reachable states satisfy: the facts an induction proof of its stream
contract needs (:mod:`spikeops.verif.formal`).

A bounded proof from reset sees only reachable states; an induction step starts from any state that
satisfies the property, including ones no input sequence reaches (a pipeline holding elements its
counters do not know of, a queue whose count disagrees with its pointers), and fails there.  The
facts below rule those states out.  Each primitive states its own (:class:`~.pipeline.CreditPipeline`,
:class:`~.rowbuffer.RingPass`) and an operator adds the ones that tie its parts together, as
Amaranth expressions over its registers, gathered in :class:`Claims` during ``elaborate``:

``claims``
    ``(condition, text)`` pairs true in every reachable state; an induction asserts each one (so
    they are proved, not trusted, and the induction may start only where they hold); a proof from
    any reachable state, made after that induction, assumes them.
``value_claims``
    claims that only a proof of ``zero`` needs (where the tagged element's value is, beyond where
    it is in order): asserted in that proof alone, so that the others carry none of their cost;
``contracts``
    ``(condition, text)`` pairs a proof *assumes*: what a library part guarantees and its own
    tests check formally (an ``amaranth.lib.fifo`` queue gives back what was written to it: Amaranth's
    ``FIFOModelEquivalenceSpec``, bounded), stated on
    its ports because its memory cannot appear in an expression;
``value_contracts``
    contracts that only a proof of ``zero`` assumes (those of the shadows of :meth:`Claims.shadow`
    with ``value_only=True``);
``shadows``
    :class:`ShadowQueue` models of library queues, which the proof's harness builds beside the
    component (they never reach an emission): a queue's memory cannot appear in an expression, so a
    fact about what it holds (the sum of its descriptors' row lengths) is stated on its shadow,
    and the contract ties the queue's head to the shadow's; a shadow of values (``value_only``:
    RMSNorm's roots, each normalised) is built, and its facts asserted, in a proof of ``zero`` alone;
``parts``
    submodules whose own facts join these (they are elaborated after the component that holds
    them, so :meth:`Claims.resolved` gathers them once the design is);
``sequence``
    the held elements in output order, as segments ``(count, check)`` (the output register, a
    queue, each pipeline stage, a ring): ``count`` elements each, and ``check(m, i, tag)`` the
    conditions that hold when the ``i``-th of them is the element a proof tagged at the input
    (:class:`Tag`: whether it ended its row, whether its answer is 0), for a proof that the
    ``k``-th output answers the ``k``-th input (``order``, ``zero``) by induction; empty where not
    stated;
``settle``
    the most cycles an element spends where the sequence's conditions state nothing of its value
    (a pipeline's stages, :meth:`~.pipeline.CreditPipeline.row_segments`): a proof of ``zero`` by
    induction is that much longer than one of ``order``, so that an element there at its start
    reaches a place where its value is checked within it;
``held``
    the number of elements accepted at ``i`` and not yet taken from ``o``;
``open``
    the number of those that belong to the row being received (not yet ended).

The harness's own counters (elements in, out, and in completed rows) are then tied to ``held`` and
``open``; with them "no output without an element owed since the reset" becomes a property of one
step (an induction closes on it), and "a quiet period empties the component" can be checked from
every state the facts allow, so from every reachable one.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value

__all__ = ["Claims", "ShadowQueue", "Tag"]


@dataclass(frozen=True)
class Tag:
    """What a proof knows of the element it tagged at the input, for the conditions of
    :attr:`Claims.sequence`: ``end``, whether it ended its row; ``zero``, whether its answer must
    be 0 (a masked Softmax input, a zero RMSNorm input: the ``zero`` proof; ``Const(0)`` in the
    others, so the value conditions, ``~zero | ...``, cost them nothing)."""

    end: Value
    zero: Value


class Claims:
    """The facts of one component (module docstring).  ``add`` a claim, ``assume`` a contract,
    ``extend`` with a part's; ``held`` and ``open`` are set by the component."""

    def __init__(self, held=None, open=None):
        self.claims: list[tuple[Value, str]] = []
        self.value_claims: list[tuple[Value, str]] = []
        self.contracts: list[tuple[Value, str]] = []
        self.value_contracts: list[tuple[Value, str]] = []
        self.shadows: list[ShadowQueue] = []
        self.parts: list = []      # submodules whose own ``claims`` exist once they are elaborated
        self.sequence: list = []   # (count, check) segments of the held elements, output first
        self.settle = 0            # cycles an element may spend where no value is stated of it
        self.held = held
        self.open = Const(0) if open is None else open

    def add(self, condition, text: str):
        self.claims.append((Value.cast(condition), text))
        return self

    def add_value(self, condition, text: str):
        """A claim for the ``zero`` proof alone (module docstring)."""
        self.value_claims.append((Value.cast(condition), text))
        return self

    def assume(self, condition, text: str):
        self.contracts.append((Value.cast(condition), text))
        return self

    def extend(self, other: "Claims"):
        self.claims += other.claims
        self.value_claims += other.value_claims
        self.contracts += other.contracts
        self.value_contracts += other.value_contracts
        self.shadows += other.shadows
        self.parts += other.parts
        return self

    def segment(self, count, check):
        """The next ``count`` held elements in output order (after the segments added before), and
        ``check(m, i, tag)``: the conditions true when the ``i``-th of them is the tagged one
        (:class:`Tag`).  (A
        part's segments are not merged by :meth:`extend`: the component states the whole order.)"""
        self.sequence.append((Value.cast(count), check))
        return self

    def part(self, component):
        """A submodule whose facts (its ``claims``, set by its own ``elaborate``, which runs after
        this component's) join these: :meth:`resolved` gathers them."""
        self.parts.append(component)
        return self

    def resolved(self) -> "Claims":
        """These facts with every part's (recursively), once the design is elaborated."""
        out = Claims(self.held, self.open)
        out.claims, out.contracts, out.shadows = list(self.claims), list(self.contracts), list(self.shadows)
        out.value_claims, out.value_contracts = list(self.value_claims), list(self.value_contracts)
        out.sequence, out.settle = list(self.sequence), self.settle
        for component in self.parts:
            sub = getattr(component, "claims", None)
            if sub is None:
                raise ValueError(f"{type(component).__name__}: no facts after elaboration (its elaborate sets "
                                 "``claims``)")
            out.extend(sub.resolved())
        return out

    def shadow(self, queue, value, *, low: int, high: int, name: str, value_only: bool = False) -> "ShadowQueue":
        """A :class:`ShadowQueue` of ``queue`` (an ``amaranth.lib.fifo`` queue) holding
        ``value(entry)`` of each entry, every one in ``[low, high]``; its facts and contract join
        these, as value claims and contracts where ``value_only`` (the ``zero`` proof's alone)."""
        sq = ShadowQueue(queue, value, low=low, high=high, name=name, value_only=value_only)
        self.shadows.append(sq)
        facts = sq.claims()
        if value_only:
            self.value_claims += facts.claims
            self.value_contracts += facts.contracts
        else:
            self.extend(facts)
        return sq


class ShadowQueue:
    """A model of an ``amaranth.lib.fifo`` queue's entries (one value of each, ``value(data)``),
    built by a proof's harness (:meth:`elaborate`): written when the queue takes a write, its head
    dropped when the queue is read.  :attr:`total` is the sum of the values it holds.

    Facts: it holds as many entries as the queue's ``level``, each in ``[low, high]``.  Contract (a
    property of the library queue: Amaranth's own tests prove its queues equivalent to a model
    queue, to a bounded depth): an entry the queue offers is the shadow's head."""

    def __init__(self, queue, value, *, low: int, high: int, name: str, value_only: bool = False):
        self.queue, self.value, self.low, self.high, self.name = queue, value, low, high, name
        self.value_only = value_only
        self.depth = queue.depth
        self.entries = [Signal(range(high + 1), name=f"{name}_shadow{k}") for k in range(self.depth)]
        self.head = Signal(range(self.depth), name=f"{name}_shadow_head")
        self.count = Signal(range(self.depth + 1), name=f"{name}_shadow_count")
        self._rows = Array(self.entries)
        self.total = sum(self.values(), Const(0, 1))

    def at(self, k: int):
        """The value of the ``k``-th entry from the head (meaningful for ``k < count``)."""
        head = self.head
        return self._rows[Mux(head + k >= self.depth, head + k - self.depth, head + k)]

    def values(self) -> list:
        """Each entry's value from the head, 0 past the last held one (``depth`` of them)."""
        return [Mux(k < self.count, self.at(k), 0) for k in range(self.depth)]

    def claims(self) -> Claims:
        c = Claims()
        n, q = self.name, self.queue
        c.add(self.count == q.level, f"{n}: the shadow holds as many entries as the queue")
        c.add(self.head < self.depth, f"{n}: the shadow's head is an entry")
        for k in range(self.depth):
            v = self.at(k)
            c.add((k >= self.count) | ((v >= self.low) & (v <= self.high)),
                  f"{n}: a held entry's value is in [{self.low}, {self.high}]")
        c.assume(~q.r_rdy | (self.value(q.r_data) == self.at(0)), f"{n}: the queue offers the shadow's head")
        return c

    def elaborate(self, m: Module):
        """The shadow's registers in the harness's module ``m``."""
        q = self.queue
        write = q.w_en & q.w_rdy
        read = q.r_en & q.r_rdy
        tail = self.head + self.count
        at_tail = Mux(tail >= self.depth, tail - self.depth, tail)
        with m.If(write):
            for k, e in enumerate(self.entries):
                with m.If(at_tail == k):
                    m.d.sync += e.eq(self.value(q.w_data))
        with m.If(read):
            m.d.sync += self.head.eq(Mux(self.head == self.depth - 1, 0, self.head + 1))
        m.d.sync += self.count.eq(self.count + write - read)
