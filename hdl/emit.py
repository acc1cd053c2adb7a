"""Verilog emission: one top module per operator and a JSON manifest beside it (used by the
``spikeops verilog`` flow and by the testbenches).

The manifest holds what a testbench or an FPGA flow needs without importing the generator: the
configuration (and its hash), the ports with widths, payload fields and number formats, latency and
initiation interval, and the golden model's identity so the exact reference can be rebuilt.
"""

from __future__ import annotations

import dataclasses

import json
from pathlib import Path

import amaranth
from amaranth.lib import data, wiring

from spikeops.golden import registry as golden_registry

from . import registry as hdl_registry
from . import verilog
from .axis import AxisOperator
from .component import OperatorComponent
from .dsp import PrimitivePlatform, Primitives, simulation_models
from .manifest import CLOCKING, PAYLOAD_PORTS, Interface

__all__ = ["emit", "emit_stepped", "emit_config", "port_table", "top_name", "latency_info"]

MANIFEST_VERSION = 1


def top_name(op: str, interface=Interface.STREAM) -> str:
    """The Verilog top module of operator ``op``: ``spikeops_<op>`` (AXI4-Stream: ``spikeops_<op>_axis``)."""
    interface = Interface.parse(interface, "top_name", "interface")
    return f"spikeops_{op}" + ("_axis" if interface == Interface.AXIS else "")


def _fields(shape):
    if isinstance(shape, data.StructLayout):
        return [{"name": name, "offset": f.offset, "width": f.width,
                 "signed": f.shape.signed if hasattr(f.shape, "signed") else False}
                for name, f in shape]
    return None


def port_table(component, cfg, interface=Interface.STREAM) -> list[dict]:
    """Verilog ports: name (Amaranth's ``a__b`` flattening), direction, width, payload fields, format."""
    interface = Interface.parse(interface, "port_table", "interface")
    clocking = CLOCKING[interface]
    roles = {clocking["clock"]: "clock (rising edge)",
             clocking["reset"]: f"synchronous reset, active {clocking['reset_active']}"}
    ports = [] if interface == Interface.AXIS else [
        {"name": n, "direction": "input", "width": 1, "role": r} for n, r in roles.items()]
    formats = {port: getattr(cfg, {"i": "in_format", "o": "out_format"}[side], None)
               for side, port in PAYLOAD_PORTS[interface].items()}
    for path, member in component.signature.members.flatten():
        if not member.is_port:
            continue
        name = "__".join(str(p) for p in path)
        shape = member.shape
        width = data.Layout.cast(shape).size if isinstance(shape, data.Layout) else amaranth.Shape.cast(shape).width
        entry = {"name": name, "direction": "input" if member.flow == wiring.In else "output",
                 "width": width}
        if name in roles:
            entry["role"] = roles[name]
        fields = _fields(shape)
        if fields:
            entry["fields"] = fields
        if formats.get(name) is not None:
            entry["format"] = formats[name].describe()
        ports.append(entry)
    return ports


def latency_info(op, cfg) -> dict:
    """The manifest's latency entry, from the component's ``latency_for(cfg, n)`` and, for a row
    operator, its timing model.

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
    grow = "n" if per_element == 1 else f"{per_element} n"
    first = f"{grow} + {base}" if per_element else base
    model = cls.timing(cfg)   # every row operator has a model (spikeops.hdl.timing)
    return {"kind": "row", "ii": 1, "first_output_after_last_input": first,
            "first_output_after_last_input_base": base,
            "first_output_after_last_input_per_element": per_element,
            "model": type(model).__name__, "model_parameters": dataclasses.asdict(model),
            "formula": model.describe()}


def _interface_entry(interface, core, cfg, axis) -> dict:
    entry = {"kind": interface.value, **CLOCKING[interface]}
    if axis is not None:
        entry["packing"] = axis.packing
        entry["tlast_fifo_depth"] = axis.tlast_fifo_depth
        entry["payload"] = {side: next(p for p in port_table(core, cfg) if p["name"] == f"{side}__payload")
                            for side in ("i", "o")}
    return entry


def _simulation_files(primitives, out: Path) -> list[str]:
    """Copy the simulation models that ``primitives`` needs into ``out``; their names."""
    names = []
    for model in simulation_models(primitives):
        (out / model.name).write_text(model.read_text())
        names.append(model.name)
    return names


def emit(op: str, cfg, out_dir, *, gamma=None, beta=None, interface=Interface.STREAM,
         primitives=Primitives.GENERIC) -> dict:
    """Write ``<top>.v`` and ``<top>.json`` for ``op`` at ``cfg`` into ``out_dir``; return the manifest.

    ``interface``: ``stream`` (the default: ``clk``, ``rst``, Amaranth's ``i__*``/``o__*`` stream
    ports) or ``axis`` (the same operator behind AXI4-Stream ports, :mod:`spikeops.hdl.axis`; the
    manifest's ``interface.packing`` says which field each signal carries).

    ``primitives``: ``generic`` (the default: registers in the fabric, any vendor) or ``ecp5`` (the
    multipliers as ECP5 ``MULT18X18D`` blocks with their registers on, :mod:`spikeops.hdl.dsp`, and
    the exp tables as ``DP16KD`` blocks with their output register on, :mod:`spikeops.hdl.rom`);
    the same values in the same cycles.  The manifest's ``simulation_files`` lists the models a
    simulator reads beside ``files`` (copied next to them); synthesis reads ``files`` only."""
    interface = Interface.parse(interface, "emit", "interface")
    primitives = Primitives.parse(primitives, "emit", "primitives")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v for k, v in (("gamma", gamma), ("beta", beta)) if v is not None}
    gop = golden_registry.get(op)
    core = component = hdl_registry.build(gop, cfg, **weights)
    axis = None
    if interface == Interface.AXIS:
        component = axis = AxisOperator(core, in_flight=type(core).latency_for(cfg))
    top = top_name(gop.name, interface)
    text = verilog.convert(component, top, f"{gop.name} at configuration {cfg.stable_hash()} "
                                           f"({gop.shape.value}; manifest {top}.json; {primitives} primitives)",
                           platform=PrimitivePlatform(primitives), **CLOCKING[interface])
    vfile = out / f"{top}.v"
    vfile.write_text(text)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "op": gop.name,
        "shape": gop.shape.value,
        "top": top,
        "files": [vfile.name],
        "primitives": primitives.value,
        "simulation_files": _simulation_files(primitives, out),
        "config": cfg.to_json(),
        "config_hash": cfg.stable_hash(),
        "interface": _interface_entry(interface, core, cfg, axis),
        "ports": port_table(component, cfg, interface),
        "latency": latency_info(op, cfg),
        # the target frequency's choice (operators built on OperatorComponent; a registered
        # operator of another kind has none)
        "pipelining": type(core).pipelining(cfg) if isinstance(core, OperatorComponent) else None,
        "golden": {"module": gop.golden.__module__, "function": gop.golden.__name__,
                   "config_class": f"{type(cfg).__module__}.{type(cfg).__qualname__}"},
        "weights": {k: [int(x) for x in v] for k, v in weights.items()},
        "tools": _tools(),
    }
    (out / f"{top}.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def emit_config(op: str, cfg, out_dir, **kwargs) -> dict:
    """:func:`emit_stepped` for a :class:`spikeops.golden.steps.StepConfig` (the operator on spike
    increments), else :func:`emit`; ``kwargs`` as they take them."""
    from spikeops.golden.steps import StepConfig
    if isinstance(cfg, StepConfig):
        if kwargs.get("interface", Interface.STREAM) != Interface.STREAM:
            raise ValueError("emit: a time-stepped operator has the stream interface only; allowed: interface='stream'")
        kwargs.pop("interface", None)
        return emit_stepped(cfg, out_dir, **kwargs)
    return emit(op, cfg, out_dir, **kwargs)


def _tools() -> dict:
    return {"amaranth": amaranth.__version__, "yosys": verilog.yosys_version(),
            "verilog": "Verilog-2005, no always @* (spikeops.hdl.verilog)"}


def emit_stepped(cfg, out_dir, *, gamma=None, beta=None, primitives=Primitives.GENERIC) -> dict:
    """Write ``spikeops_<op>_steps.v`` and its manifest for the time-stepped wrapper at ``cfg`` (a
    :class:`spikeops.golden.steps.StepConfig`, :mod:`spikeops.hdl.steps`); return the manifest.

    The manifest's ``frames`` entry says how the stream is framed (a frame per step: a row ended by
    ``last``, or ``lanes`` elements; ``steps`` frames a sample), its ``latency`` the wrapper's stages
    around the operator's own latency entry; ``primitives`` as for :func:`emit`."""
    from .steps import INPUT_STAGES, OUTPUT_STAGES, SteppedOperator

    primitives = Primitives.parse(primitives, "emit", "primitives")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v for k, v in (("gamma", gamma), ("beta", beta)) if v is not None}
    rec = cfg.record
    SteppedOperator.check_weights(cfg, **weights)
    component = SteppedOperator(cfg, **weights)
    top = f"{top_name(rec.name)}_steps"
    text = verilog.convert(component, top, f"{rec.name} on spike increments over {cfg.steps} steps at "
                                           f"configuration {cfg.stable_hash()} (manifest {top}.json; {primitives} primitives)",
                           platform=PrimitivePlatform(primitives), **CLOCKING[Interface.STREAM])
    vfile = out / f"{top}.v"
    vfile.write_text(text)
    framing = "a row ended by last" if rec.shape.is_row else f"{cfg.lanes} elements (lanes)"
    inner_latency = latency_info(rec.name, cfg.inner)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "op": rec.name,
        "stepped": True,
        "shape": rec.shape.value,
        "top": top,
        "files": [vfile.name],
        "primitives": primitives.value,
        "simulation_files": _simulation_files(primitives, out),
        "config": cfg.to_json(),
        "config_hash": cfg.stable_hash(),
        "interface": _interface_entry(Interface.STREAM, component, cfg, None),
        "frames": {"frame": cfg.frame, "steps": cfg.steps, "framing": framing,
                   "order": "sample by sample; within a sample, step 0 .. steps-1, each a frame in element order",
                   "encoding": cfg.encoding.value},
        "ports": port_table(component, cfg),
        "latency": {"wrapper_stages": {"input": INPUT_STAGES, "output": OUTPUT_STAGES},
                    "cycles": SteppedOperator.latency_for(cfg), "ii": 1, "operator": inner_latency,
                    "formula": f"the operator's ({inner_latency['formula']}) plus {INPUT_STAGES} cycles before "
                               f"it and {OUTPUT_STAGES} after it; {cfg.steps} frames of {framing} a sample"},
        "golden": {"module": "spikeops.golden.steps", "function": "run_steps",
                   "config_class": f"{type(cfg).__module__}.{type(cfg).__qualname__}"},
        "weights": {k: [int(x) for x in v] for k, v in weights.items()},
        "tools": _tools(),
    }
    (out / f"{top}.json").write_text(json.dumps(manifest, indent=1))
    return manifest
