"""The AXI4-Stream face of an operator: the same component behind the port names that FPGA tools
(Vivado IP integrator, Quartus Platform Designer, LiteX, FuseSoC generators) recognise.

:class:`AxisOperator` wraps any operator component (its ``i``/``o`` streams) and exposes

- ``aclk`` (rising edge) and ``aresetn`` (synchronous, active low, as AMBA AXI4-Stream defines it):
  the operator's ``sync`` domain, whose reset is ``~aresetn``;
- ``s_axis_tdata``, ``s_axis_tvalid``, ``s_axis_tready``, ``s_axis_tlast`` and, when the operator's
  input carries more than data and ``last`` (the Softmax mask), ``s_axis_tuser``;
- ``m_axis_tdata``, ``m_axis_tvalid``, ``m_axis_tready``, ``m_axis_tlast``;
- the operator's other ports (status flags, the norms' weight write ports) unchanged, on ``aclk``.

Packing (one element per transfer, every byte valid, so no ``tkeep``/``tstrb``):

- ``tdata`` is the element's code padded to whole bytes: ``8 * ceil(width / 8)`` bits, the code in
  the low bits.  On the output the padding repeats the sign bit of a signed format and is zero for an
  unsigned one (``m_axis_tdata`` read as a signed or unsigned integer is the code); on the input the
  padding bits are ignored.
- ``tlast`` marks a row's last element.  Row operators take it as the row's end (Softmax: a row of
  any length up to ``d_max``; the norms: the row of ``d``, a wrong length raises ``error``) and set
  it on each output row's last element.  Elementwise operators compute nothing from it: it travels
  beside the element through a small FIFO and leaves with that element's result, so packets keep
  their boundaries.
- ``tuser`` packs the input fields other than ``data`` and ``last``, low bit first in the order of
  the payload layout (Softmax: bit 0 = ``masked``).

AXI's rules hold because the operator's stream rules do: ``m_axis_tvalid`` is a register that does
not wait on ``m_axis_tready``, and once high it holds with its data until taken; ``s_axis_tready``
may depend on ``s_axis_tvalid`` (the specification allows it).  Everything is reset by ``aresetn``:
``m_axis_tvalid`` is low during and after reset until a new input has produced an output.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Module, Shape, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxisOperator", "axis_packing", "tdata_width", "PASSED_FIELDS"]

#: payload fields that have their own AXI signal (the rest go to tuser)
PASSED_FIELDS = ("data", "last")


def tdata_width(bits: int) -> int:
    """``bits`` padded to whole bytes (at least one)."""
    return 8 * max(1, -(-bits // 8))


def _fields(shape) -> dict:
    """name -> (offset, Shape) of a stream payload (a plain shape is one field, ``data``)."""
    if isinstance(shape, data.StructLayout):
        return {name: (f.offset, Shape.cast(f.shape)) for name, f in shape}
    return {"data": (0, Shape.cast(shape))}


def _payload_shapes(component):
    members = component.signature.members
    for side in ("i", "o"):
        if side not in members or not members[side].is_signature:
            raise TypeError(f"AxisOperator: the component has no stream {side!r}; ports: {', '.join(members)}")
    return (members["i"].signature.members["payload"].shape,
            members["o"].signature.members["payload"].shape)


def axis_packing(component) -> dict:
    """How the AXI4-Stream signals map onto the operator's stream payloads (the manifest's
    ``interface.packing``): the width of each signal and the payload field it carries."""
    ishape, oshape = _payload_shapes(component)
    ifields, ofields = _fields(ishape), _fields(oshape)
    for side, fields in (("input", ifields), ("output", ofields)):
        if "data" not in fields:
            raise TypeError(f"AxisOperator: the operator's {side} payload has no 'data' field")
    user = [{"name": k, "offset": o, "width": s.width} for k, (o, s) in ifields.items() if k not in PASSED_FIELDS]
    lsb = 0
    for u in user:
        u["tuser_bit"], lsb = lsb, lsb + u["width"]

    def tdata(fields):
        o, s = fields["data"]
        return {"width": tdata_width(s.width), "field": "data", "field_width": s.width, "signed": s.signed,
                "padding": "sign" if s.signed else "zero"}

    return {
        "s_axis_tdata": tdata(ifields) | {"padding": "ignored"},
        "s_axis_tlast": "last" if "last" in ifields else "carried",
        "s_axis_tuser": user,
        "m_axis_tdata": tdata(ofields),
        "m_axis_tlast": "last" if "last" in ofields else "carried",
        "one_element_per_transfer": True,
    }


class AxisOperator(wiring.Component):
    """An operator component behind AXI4-Stream ports (see the module docstring).

    ``component``: the operator (``i``/``o`` streams plus side ports, ``sync`` domain);
    ``in_flight``: the most elements the operator holds at once (its latency): sizes the FIFO that
    carries ``tlast`` beside the elements when the payloads have no ``last``, unused otherwise."""

    def __init__(self, component, *, in_flight: int = 0):
        self.core = component
        self._shapes = _payload_shapes(component)
        self.packing = axis_packing(component)
        self._carried = self.packing["s_axis_tlast"] == "carried"
        if self._carried != (self.packing["m_axis_tlast"] == "carried"):
            raise TypeError("AxisOperator: the operator's input and output payloads must both have a 'last' "
                            "field or both lack one")
        if self._carried and (not isinstance(in_flight, int) or in_flight < 1):
            raise ValueError(f"AxisOperator: in_flight={in_flight!r} is not allowed; allowed: an integer >= 1 "
                             "(the operator's latency; its input has no 'last' to carry tlast)")
        self.in_flight = in_flight
        pk = self.packing
        members = {"aclk": In(1), "aresetn": In(1),
                   "s_axis_tdata": In(pk["s_axis_tdata"]["width"]), "s_axis_tvalid": In(1),
                   "s_axis_tready": Out(1), "s_axis_tlast": In(1)}
        tuser = sum(u["width"] for u in pk["s_axis_tuser"])
        if tuser:
            members["s_axis_tuser"] = In(tuser)
        members |= {"m_axis_tdata": Out(pk["m_axis_tdata"]["width"]), "m_axis_tvalid": Out(1),
                    "m_axis_tready": In(1), "m_axis_tlast": Out(1)}
        #: the operator's other ports, passed through under their own names
        self.side_ports = [name for name in component.signature.members if name not in ("i", "o")]
        for name in self.side_ports:
            if name in members:
                raise ValueError(f"AxisOperator: the operator's port {name!r} clashes with an AXI4-Stream port")
            members[name] = component.signature.members[name]
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.core = core = self.core
        pk = self.packing

        for name in self.side_ports:  # unchanged
            if self.signature.members[name].flow == In:
                m.d.comb += getattr(core, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(core, name))

        ipay, opay = core.i.payload, core.o.payload
        istruct, ostruct = (isinstance(s, data.StructLayout) for s in self._shapes)
        iw = pk["s_axis_tdata"]["field_width"]
        m.d.comb += (ipay.data if istruct else ipay).eq(self.s_axis_tdata[:iw])
        for u in pk["s_axis_tuser"]:
            m.d.comb += ipay[u["name"]].eq(self.s_axis_tuser[u["tuser_bit"]:u["tuser_bit"] + u["width"]])
        odata = opay.data if ostruct else opay
        odata = odata.as_signed() if pk["m_axis_tdata"]["signed"] else odata.as_unsigned()
        m.d.comb += [self.m_axis_tdata.eq(odata), self.m_axis_tvalid.eq(core.o.valid),
                     core.o.ready.eq(self.m_axis_tready)]

        if not self._carried:
            m.d.comb += [ipay.last.eq(self.s_axis_tlast), self.m_axis_tlast.eq(opay.last),
                         core.i.valid.eq(self.s_axis_tvalid), self.s_axis_tready.eq(core.i.ready)]
            return m

        # elementwise: tlast rides a FIFO beside the elements (pushed when an element is taken,
        # popped when its result is); a full FIFO holds the input back, so nothing is lost
        m.submodules.tlast = tl = fifo.SyncFIFO(width=1, depth=self.tlast_fifo_depth)
        take_in = Signal()
        m.d.comb += [
            core.i.valid.eq(self.s_axis_tvalid & tl.w_rdy),
            self.s_axis_tready.eq(core.i.ready & tl.w_rdy),
            take_in.eq(self.s_axis_tvalid & self.s_axis_tready),
            tl.w_en.eq(take_in), tl.w_data.eq(self.s_axis_tlast),
            self.m_axis_tlast.eq(tl.r_data[0] & tl.r_rdy),
            tl.r_en.eq(core.o.valid & self.m_axis_tready),
        ]
        return m

    @property
    def tlast_fifo_depth(self) -> int:
        """Entries of the tlast FIFO: one more than the elements in flight (0: no FIFO)."""
        return self.in_flight + 1 if self._carried else 0
