"""What a manifest says about an emitted top's ports, readable without Amaranth: the interface
(its clock, its reset and how active it is) and where each stream's payload sits.

An emitted operator has one of two faces (:class:`Interface`): Amaranth's stream names (``clk``,
``rst``, ``i__valid``/``i__ready``/``i__payload``, ``o__...``), or AXI4-Stream
(:mod:`spikeops.hdl.axis`: ``aclk``, ``aresetn``, ``s_axis_*``, ``m_axis_*``), whose manifest also
records the operator's own payload layouts behind ``tdata``/``tlast``/``tuser``.
"""

from __future__ import annotations

from spikeops.golden.choices import Choice

__all__ = ["Interface", "CLOCKING", "PAYLOAD_PORTS", "STREAM_PREFIXES", "interface_info", "payload_port",
           "side_port_names"]


class Interface(Choice):
    """The port convention of an emitted operator."""

    STREAM = "stream"  # Amaranth's stream names: clk, rst, i__valid/ready/payload, o__...
    AXIS = "axis"      # AXI4-Stream: aclk, aresetn, s_axis_*, m_axis_*


#: the clock and synchronous reset of each interface
CLOCKING = {Interface.STREAM: {"clock": "clk", "reset": "rst", "reset_active": "high"},
            Interface.AXIS: {"clock": "aclk", "reset": "aresetn", "reset_active": "low"}}
#: the port that carries each stream's payload (AXI4-Stream: its data; tlast and tuser beside it)
PAYLOAD_PORTS = {Interface.STREAM: {"i": "i__payload", "o": "o__payload"},
                 Interface.AXIS: {"i": "s_axis_tdata", "o": "m_axis_tdata"}}
#: the name prefixes of the two streams' ports
STREAM_PREFIXES = {Interface.STREAM: ("i__", "o__"), Interface.AXIS: ("s_axis_", "m_axis_")}


def interface_info(manifest: dict) -> dict:
    """The manifest's ``interface`` entry (manifests written before it existed: the stream names)."""
    return manifest.get("interface") or {"kind": Interface.STREAM.value, **CLOCKING[Interface.STREAM]}


def payload_port(manifest: dict, side: str) -> dict:
    """The operator's ``side`` (``i`` or ``o``) stream payload as a port entry (width, fields,
    format): the ``i__payload``/``o__payload`` port, or for an AXI4-Stream top the payload of the
    operator inside it, which its ``tdata``/``tlast``/``tuser`` carry."""
    info = interface_info(manifest)
    if info["kind"] == Interface.STREAM:
        return next(p for p in manifest["ports"] if p["name"] == f"{side}__payload")
    return info["payload"][side]


def side_port_names(manifest: dict) -> list[str]:
    """The ports besides the clock, the reset and the two streams (status flags, weight writes)."""
    info = interface_info(manifest)
    prefixes = STREAM_PREFIXES[Interface(info["kind"])]
    return [p["name"] for p in manifest["ports"]
            if p["name"] not in (info["clock"], info["reset"]) and not p["name"].startswith(prefixes)]
