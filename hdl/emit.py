"""Verilog emission: one top module per operator and a JSON manifest beside it (used by the
``spikeops verilog`` flow and by the testbenches).

The manifest holds what a testbench or an FPGA flow needs without importing the generator: the
configuration (and its hash), the ports with widths, payload fields and number formats, latency and
initiation interval, and the golden model's identity so the exact reference can be rebuilt.
"""

from __future__ import annotations

import json
from pathlib import Path

import amaranth
from amaranth.lib import data, wiring

from spikeops.golden import registry as golden_registry

from . import registry as hdl_registry
from . import verilog

__all__ = ["emit", "port_table", "top_name", "latency_info"]

MANIFEST_VERSION = 1


def top_name(op: str) -> str:
    """The Verilog top module of operator ``op``: ``spikeops_<op>``."""
    return f"spikeops_{op}"


def _fields(shape):
    if isinstance(shape, data.StructLayout):
        return [{"name": name, "offset": f.offset, "width": f.width,
                 "signed": f.shape.signed if hasattr(f.shape, "signed") else False}
                for name, f in shape]
    return None


def port_table(component, cfg) -> list[dict]:
    """Verilog ports: name (Amaranth's ``a__b`` flattening), direction, width, payload fields, format."""
    ports = [{"name": "clk", "direction": "input", "width": 1, "role": "clock (rising edge)"},
             {"name": "rst", "direction": "input", "width": 1, "role": "synchronous reset, active high"}]
    formats = {"i": getattr(cfg, "in_format", None), "o": getattr(cfg, "out_format", None)}
    for path, member in component.signature.members.flatten():
        if not member.is_port:
            continue
        name = "__".join(str(p) for p in path)
        shape = member.shape
        width = data.Layout.cast(shape).size if isinstance(shape, data.Layout) else amaranth.Shape.cast(shape).width
        entry = {"name": name, "direction": "input" if member.flow == wiring.In else "output",
                 "width": width}
        fields = _fields(shape)
        if fields:
            entry["fields"] = fields
        if path[-1] == "payload" and formats.get(path[0]) is not None:
            entry["format"] = formats[path[0]].describe()
        ports.append(entry)
    return ports


def latency_info(op, cfg) -> dict:
    """The manifest's latency entry, from the component's ``latency_for(cfg, n)``.

    Elementwise operators have a fixed latency from input to output; row operators a latency from
    a row's last input to its first output, constant or growing with the row length ``n`` (read off
    ``latency_for`` at two lengths, so no operator is special-cased)."""
    rec = golden_registry.get(op)
    cls = rec.component()
    if not rec.shape.is_row:
        cycles = cls.latency_for(cfg)
        return {"kind": "fixed", "cycles": cycles, "ii": 1,
                "formula": f"{cycles} cycles from an accepted input to its output, no stalls"}
    base = cls.latency_for(cfg, 0)
    per_element = cls.latency_for(cfg, 1) - base
    if per_element:
        grow = "n" if per_element == 1 else f"{per_element} n"
        return {"kind": "row", "ii": 1, "first_output_after_last_input": f"{grow} + {base}",
                "first_output_after_last_input_base": base,
                "first_output_after_last_input_per_element": per_element,
                "formula": f"first output {base} + {grow} cycles after the row's last input is accepted, or "
                           "after the previous row's last output if that is later (n = row length, "
                           "sink ready); the next row is received while one is sent"}
    return {"kind": "row", "ii": 1, "first_output_after_last_input": base,
            "formula": f"first output {base} cycles after the row's last input is accepted, or after the "
                       "previous row's last output if that is later (sink ready); the next row is "
                       "received while one is processed"}


def emit(op: str, cfg, out_dir, *, gamma=None, beta=None) -> dict:
    """Write ``<top>.v`` and ``<top>.json`` for ``op`` at ``cfg`` into ``out_dir``; return the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v for k, v in (("gamma", gamma), ("beta", beta)) if v is not None}
    gop = golden_registry.get(op)
    component = hdl_registry.build(gop, cfg, **weights)
    top = top_name(gop.name)
    text = verilog.convert(component, top, f"{gop.name} at configuration {cfg.stable_hash()} "
                                           f"({gop.shape.value}; manifest {top}.json)")
    vfile = out / f"{top}.v"
    vfile.write_text(text)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "op": gop.name,
        "shape": gop.shape.value,
        "top": top,
        "files": [vfile.name],
        "config": cfg.to_json(),
        "config_hash": cfg.stable_hash(),
        "ports": port_table(component, cfg),
        "latency": latency_info(op, cfg),
        "golden": {"module": gop.golden.__module__, "function": gop.golden.__name__,
                   "config_class": f"{type(cfg).__module__}.{type(cfg).__qualname__}"},
        "weights": {k: [int(x) for x in v] for k, v in weights.items()},
        "tools": {"amaranth": amaranth.__version__, "yosys": verilog.yosys_version(),
                  "verilog": "Verilog-2005, no always @* (spikeops.hdl.verilog)"},
    }
    (out / f"{top}.json").write_text(json.dumps(manifest, indent=1))
    return manifest
