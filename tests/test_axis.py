# amaranth: UnusedElaboratable=no
"""The AXI4-Stream face (``spikeops verilog --interface axis``): the packing, the emitted ports and
manifest, the FPGA files that follow it, the plain self-checking bench through it, and cocotbext-axi's
AxiStreamSource, AxiStreamSink and AxiStreamMonitor (a client we did not write) on both simulators.

Default run: every operator on Icarus and the Softmax and SiLU on Verilator, at small rows; ``-m
slow`` adds the rest on Verilator and the default configurations on both simulators.
"""

import json
import os
import shutil

import pytest
from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeops.gen.cli import main
from spikeops.gen.fpga import core_name
from spikeops.golden import registry
from spikeops.hdl.axis import AxisOperator, tdata_width
from spikeops.verif import axis_runner, env
from spikeops.verif.axis_frames import decode_frame, encode_row
from spikeops.verif.plain_tb import run_testbench

from fpga_checks import check_registered_io, regio_netlist  # noqa: E402

OPS = list(registry.OPERATORS)
SIMS = [s for s in env.SIMULATORS if os.environ.get("SPIKEOPS_SIM", s) == s]


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    """Every operator's AXI4-Stream top at its default configuration, as the command writes it."""
    out = tmp_path_factory.mktemp("axis")
    assert main(["verilog", "--op", "all", "--interface", "axis", "-o", str(out)]) == 0
    return out


def manifest(emitted, op):
    return json.loads((emitted / f"spikeops_{op}_axis.json").read_text())


# -- packing ---------------------------------------------------------------------------------------
def test_tdata_is_padded_to_whole_bytes():
    assert [tdata_width(b) for b in (1, 8, 9, 16, 17, 20, 24, 25)] == [8, 8, 16, 16, 24, 24, 24, 32]


SIGNED20 = {"s_axis_tdata": {"width": 24, "field_width": 20, "signed": True},
            "s_axis_tuser": [{"name": "masked", "offset": 20, "width": 1, "tuser_bit": 0}],
            "m_axis_tdata": {"width": 24, "field_width": 20, "signed": True, "padding": "sign"}}


def test_rows_become_little_endian_bytes_with_tuser_per_byte():
    tdata, tuser = encode_row([1, -1, -(1 << 19)], SIGNED20, mask=[True, False, True])
    assert tdata == bytes([1, 0, 0, 0xFF, 0xFF, 0x0F, 0, 0, 0x08])  # 20-bit codes, padding bits zero
    assert tuser == [0, 0, 0, 1, 1, 1, 0, 0, 0]                      # masked = not valid, on every byte
    with pytest.raises(ValueError, match="masked"):
        encode_row([1], SIGNED20)                                    # a mask field needs a mask


def test_frames_decode_signed_and_unsigned_and_check_the_padding():
    codes = [0, 1, -1, (1 << 19) - 1, -(1 << 19)]
    raw = b"".join((c & 0xFFFFFF).to_bytes(3, "little") for c in codes)  # sign-extended to 24 bits
    assert decode_frame(raw, SIGNED20).tolist() == codes
    unsigned = {"m_axis_tdata": {"width": 16, "field_width": 13, "signed": False, "padding": "zero"}}
    assert decode_frame(bytes([0xFF, 0x1F, 0, 0]), unsigned).tolist() == [8191, 0]
    with pytest.raises(ValueError, match="padding above bit 12"):
        decode_frame(bytes([0, 0x20]), unsigned)
    with pytest.raises(ValueError, match="padding above bit 19"):
        decode_frame(bytes([0, 0, 0x10]), SIGNED20)                     # bit 20 set, bit 19 clear
    with pytest.raises(ValueError, match="whole number of 3-byte transfers"):
        decode_frame(bytes(4), SIGNED20)


# -- the wrapper's own checks ----------------------------------------------------------------------
class _Plain(wiring.Component):
    def __init__(self, members):
        super().__init__(members)

    def elaborate(self, platform):
        return Module()


def test_wrapper_refuses_what_it_cannot_wrap():
    with pytest.raises(TypeError, match="no stream 'o'"):
        AxisOperator(_Plain({"i": In(stream.Signature(8))}))
    both = {"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))}
    with pytest.raises(ValueError, match="in_flight=0 is not allowed; allowed: an integer >= 1"):
        AxisOperator(_Plain(both))
    with pytest.raises(ValueError, match="'s_axis_tdata' clashes"):
        AxisOperator(_Plain({**both, "s_axis_tdata": Out(1)}), in_flight=2)
    rows_in = In(stream.Signature(data.StructLayout({"data": 8, "last": 1})))
    with pytest.raises(TypeError, match="both have a 'last' field or both lack one"):
        AxisOperator(_Plain({"i": rows_in, "o": Out(stream.Signature(8))}), in_flight=2)


# -- emission and the FPGA files -------------------------------------------------------------------
def test_axis_top_ports_and_manifest(emitted):
    for op in OPS:
        m = manifest(emitted, op)
        rec = registry.get(op)
        assert m["top"] == f"spikeops_{op}_axis"
        info = m["interface"]
        assert (info["kind"], info["clock"], info["reset"], info["reset_active"]) == ("axis", "aclk", "aresetn", "low")
        ports = {p["name"]: p for p in m["ports"]}
        for name in ("aclk", "aresetn", "s_axis_tdata", "s_axis_tvalid", "s_axis_tlast", "m_axis_tready"):
            assert ports[name]["direction"] == "input", name
        for name in ("s_axis_tready", "m_axis_tdata", "m_axis_tvalid", "m_axis_tlast"):
            assert ports[name]["direction"] == "output", name
        assert not any(n.startswith(("i__", "o__")) or n in ("clk", "rst") for n in ports)
        assert ports["s_axis_tdata"]["width"] % 8 == 0 and ports["m_axis_tdata"]["width"] % 8 == 0
        assert ports["m_axis_tdata"]["format"] == m["interface"]["payload"]["o"]["format"]
        assert ("s_axis_tuser" in ports) == rec.masked          # the Softmax mask, nothing else
        pk = info["packing"]
        assert pk["s_axis_tlast"] == ("last" if rec.shape.is_row else "carried")
        assert (info["tlast_fifo_depth"] > 0) == (not rec.shape.is_row)
        text = (emitted / f"{m['top']}.v").read_text()
        assert f"module {m['top']}(" in text and "always @*" not in text.split("\n/* Generated by Amaranth", 1)[1]
        assert "aresetn is synchronous" in text and "active low" in text


def test_stream_interface_stays_the_default(tmp_path):
    assert main(["verilog", "--op", "silu", "-o", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "spikeops_silu.json").read_text())
    assert m["interface"] == {"kind": "stream", "clock": "clk", "reset": "rst", "reset_active": "high"}
    assert {"clk", "rst", "i__payload", "o__payload"} <= {p["name"] for p in m["ports"]}


def test_unknown_interface_is_one_line(capsys, tmp_path):
    assert main(["verilog", "--op", "silu", "--interface", "axi", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--interface" in err[0] and "'axi'" in err[0] and "'axis'" in err[0], err
    assert not (tmp_path / "x").exists()


def test_fpga_files_follow_the_axis_top(emitted, tmp_path):
    m = manifest(emitted, "softmax")
    top = m["top"]
    from fusesoc.capi2.coreparser import Core2Parser
    from fusesoc.core import Core
    core = Core(Core2Parser(), str(emitted / f"{top}.core"))
    assert str(core.name) == core_name(m) and str(core.name).startswith("spikeops:ops:softmax_axis:")
    flags = {**core.get_flags("synth"), "target": "synth", "is_toplevel": True}
    assert core.get_toplevel(flags) == top
    assert f"synth_ecp5 -nowidelut -top {top}" in (emitted / f"{top}.ys").read_text()
    # the timing harness: aclk/aresetn pass through, every other port is registered on aclk
    check_registered_io(m, regio_netlist(emitted, m, tmp_path))


# -- the plain self-checking bench through the AXI4-Stream ports -------------------------------------
def _plain(emitted, op, sim):
    reason = env.unavailable_reason(sim)
    if reason:
        pytest.skip(f"{sim}: {reason}")
    r = run_testbench(manifest(emitted, op), emitted, sim, build_dir=emitted / f"plain-{op}-{sim}")
    assert r.passed, f"{r.line}\n{r.log[-2000:]}"
    assert r.resets >= 1


@pytest.mark.parametrize("op", OPS)
def test_plain_bench_through_axis_on_icarus(emitted, op):
    _plain(emitted, op, "icarus")


@pytest.mark.parametrize("op", ["softmax"] + [pytest.param(o, marks=pytest.mark.slow) for o in OPS if o != "softmax"])
def test_plain_bench_through_axis_on_verilator(emitted, op):
    _plain(emitted, op, "verilator")


def test_plain_bench_catches_a_lost_tlast(emitted, tmp_path):
    """The bench's interface check can fail: a bench expecting tlast one element early reports it."""
    if env.unavailable_reason("icarus"):
        pytest.skip("icarus: " + env.unavailable_reason("icarus"))
    m = manifest(emitted, "silu")
    for f in emitted.glob("spikeops_silu_axis*"):
        if f.is_file():
            shutil.copy(f, tmp_path)
    tb = tmp_path / "spikeops_silu_axis_tb.v"
    text = tb.read_text()
    assert "(m % 7 == 6)" in text
    tb.write_text(text.replace("(m % 7 == 6)", "(m % 7 == 5)"))
    r = run_testbench(m, tmp_path, "icarus")
    assert not r.passed and "outputs wrong" in r.line


# -- cocotbext-axi ---------------------------------------------------------------------------------
def small(op):
    """The default configuration with rows of 16 (cheap to simulate through cocotb)."""
    rec = registry.get(op)
    cfg = rec.default()
    return cfg.replace(**{rec.row_param: 16}) if rec.row_param else cfg


def _axis(op, cfg, sim, size=160):
    reason = env.unavailable_reason(sim)
    if reason:
        pytest.skip(f"{sim}: {reason}")
    res = axis_runner.AxisRegression(op, cfg, sim).build().run(size=size)
    assert res.tests == 10 and res.failed == 0, res.log[-3000:]
    assert res.frames >= 2 and res.elements >= size // 2
    return res


DEFAULT_PAIRS = [(op, "icarus") for op in OPS] + [("softmax", "verilator")]
SLOW_PAIRS = [(op, "verilator") for op in OPS if op != "softmax"]


@pytest.mark.parametrize("op,sim", [p for p in DEFAULT_PAIRS if p[1] in SIMS]
                         + [pytest.param(*p, marks=pytest.mark.slow) for p in SLOW_PAIRS if p[1] in SIMS])
def test_cocotbext_axi_small_rows(op, sim):
    _axis(op, small(op), sim)


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("op", OPS)
def test_cocotbext_axi_default_configuration(op, sim):
    _axis(op, registry.get(op).default(), sim, size=1500)


def test_cocotbext_axi_tests_can_fail(monkeypatch):
    """A golden value off by one in one frame fails the tests that see it (all but the reset test,
    which sends its own frames)."""
    if env.unavailable_reason("icarus"):
        pytest.skip("icarus: " + env.unavailable_reason("icarus"))
    real = axis_runner.frames_of

    def off_by_one(stim, cfg, **kw):
        frames = real(stim, cfg, **kw)
        if stim.kind == "random":
            frames[1]["expected"][0] += 1
        return frames

    monkeypatch.setattr(axis_runner, "frames_of", off_by_one)
    res = axis_runner.AxisRegression("silu", small("silu"), "icarus").build().run(size=80)
    assert (res.tests, res.failed) == (10, 9)
    assert "frame 1: 1 of" in res.log and "differ from the golden model" in res.log
