"""Rows of operator codes as AXI4-Stream frames and back, by the packing of an emitted AXI4-Stream
top (its manifest's ``interface.packing``, written by :mod:`spikeops.hdl.axis`).

A frame is what a byte-oriented AXI4-Stream client such as cocotbext-axi sends: ``tdata`` as bytes,
each element in ``ceil(width / 8)`` little-endian bytes (one element per transfer), ``tuser`` one
entry per byte (the transfer's value repeated over its bytes), ``tlast`` on the frame's last
transfer.  Pure functions, so the packing is tested without a simulator.
"""

from __future__ import annotations

import numpy as np

__all__ = ["element_bytes", "encode_row", "decode_frame"]


def element_bytes(packing: dict, signal: str) -> int:
    """Bytes per transfer of ``signal`` (``s_axis_tdata`` or ``m_axis_tdata``)."""
    return packing[signal]["width"] // 8


def encode_row(row, packing: dict, mask=None) -> tuple[bytes, list[int] | None]:
    """``(tdata, tuser)`` of one input row: each code in two's complement over its field width,
    padded with zero bits to the transfer (the operator ignores the padding); ``mask`` (True = a
    valid position) fills the tuser field ``masked`` where the packing has one."""
    nb = element_bytes(packing, "s_axis_tdata")
    width = packing["s_axis_tdata"]["field_width"]
    codes = [int(v) & ((1 << width) - 1) for v in np.asarray(row, dtype=np.int64)]
    tdata = b"".join(c.to_bytes(nb, "little") for c in codes)
    user_fields = packing["s_axis_tuser"]
    if not user_fields:
        return tdata, None
    values = {"masked": None if mask is None else [0 if ok else 1 for ok in mask]}
    tuser = []
    for j in range(len(codes)):
        word = 0
        for f in user_fields:
            per = values.get(f["name"])
            if per is None:
                raise ValueError(f"encode_row: no values for the tuser field {f['name']!r}")
            word |= (int(per[j]) & ((1 << f["width"]) - 1)) << f["tuser_bit"]
        tuser += [word] * nb
    return tdata, tuser


def decode_frame(tdata: bytes, packing: dict) -> np.ndarray:
    """The output codes of a received frame: each transfer's bytes as a little-endian integer,
    read signed or unsigned by the output format, checked against the declared padding (the sign
    repeated, or zeros): a padding bit that disagrees raises ValueError."""
    spec = packing["m_axis_tdata"]
    nb, width, signed = spec["width"] // 8, spec["field_width"], spec["signed"]
    if len(tdata) % nb:
        raise ValueError(f"decode_frame: {len(tdata)} bytes is not a whole number of {nb}-byte transfers")
    out = []
    for k in range(0, len(tdata), nb):
        word = int.from_bytes(tdata[k:k + nb], "little")
        value = int.from_bytes(tdata[k:k + nb], "little", signed=signed)
        lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if signed else (0, 1 << width)
        if not lo <= value < hi:
            raise ValueError(f"decode_frame: transfer {k // nb} = {word:#x}: its padding above bit "
                             f"{width - 1} is not the {spec['padding']} extension of the code")
        out.append(value)
    return np.asarray(out, dtype=np.int64)
