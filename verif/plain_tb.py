"""A plain-Verilog, self-checking testbench of an emitted operator: no cocotb, no Python at run time.

``spikeops verilog`` writes it beside the operator (``<top>_tb.v``) with its data files, and the
FuseSoC core's ``sim_icarus`` target runs it; the default test suite runs it on Icarus and Verilator
for every operator.  It is what a user without this project would write:

- ``<top>_tb_stim.hex``: the packed ``i__payload`` words (``$readmemh``), one per input element;
- ``<top>_tb_expected.hex``: the packed ``o__payload`` words the golden model gives (data and
  ``last``), one per output, compared whole with ``!==`` (an X or Z output is a mismatch);
- ``<top>_tb_ctl.hex``: one bit per input element, 1 = "a reset before this element": the bench
  stops presenting, waits until every earlier output has arrived, holds ``rst`` for two cycles and
  goes on (a reset between rows: nothing of an earlier row may come out after it).

``valid`` is drawn from an xorshift32 generator with probability ``PV/256`` (idle cycles; a
presented element is held until it is taken, as the stream rule requires) and ``ready`` with
``PR/256`` (backpressure).  The bench also checks the stream rule on the DUT's output (once
``o__valid`` is high it stays high with the same payload until ``o__ready``), that no output comes
beyond the expected ones, and that no status output (``error``) rises.  It ends with one line,
``spikeops_tb: PASS ...`` (then ``$finish``, exit status 0) or ``spikeops_tb: FAIL ...`` (then
``$fatal``, a non-zero exit status); a stall of ``TIMEOUT`` cycles without a handshake fails it.  Parameters and plusargs: ``+stim= +expected= +ctl=`` (file
names, default the generated ones), ``+pv= +pr= +seed=``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeops.golden import registry
from spikeops.hdl.manifest import Interface, interface_info, payload_port

from . import env
from .stimulus import Stimulus, make, pack
from .wrapper import side_ports

__all__ = ["bench_top", "testbench_verilog", "write_testbench", "run_testbench", "PlainResult",
           "default_stimulus", "output_words"]


def bench_top(manifest: dict) -> str:
    return f"{manifest['top']}_tb"


def _field(port: dict, name: str):
    for f in port.get("fields") or ():
        if f["name"] == name:
            return f
    return None


def output_words(manifest: dict, data, row_lengths) -> list[int]:
    """Packed ``o__payload`` words of output codes ``data`` (``last`` set at each row's end)."""
    port = payload_port(manifest, "o")
    d, last = _field(port, "data"), _field(port, "last")
    width, offset = (d["width"], d["offset"]) if d else (port["width"], 0)
    ends = set(np.cumsum(row_lengths) - 1) if last is not None else set()
    return [((int(v) & ((1 << width) - 1)) << offset) | ((1 << last["offset"]) if j in ends else 0)
            for j, v in enumerate(data)]


def default_stimulus(manifest: dict, cfg, *, seed: int = 0) -> Stimulus:
    """The bench's data: random rows (elementwise: elements) followed by the corner cases, with the
    emitted design's weights."""
    rec = registry.get(manifest["op"])
    size = 1500 if not rec.shape.is_row else min(3000, 4 * rec.row_length(cfg))
    rnd = make(rec.name, cfg, "random", size=size, seed=seed)
    corners = make(rec.name, cfg, "corners", seed=seed)
    weights = {k: np.asarray(v, dtype=np.int64) for k, v in manifest.get("weights", {}).items()}
    masks = None
    if rnd.masks is not None or corners.masks is not None:
        masks = [*(rnd.masks or [np.ones(len(r), bool) for r in rnd.rows]),
                 *(corners.masks or [np.ones(len(r), bool) for r in corners.rows])]
    return Stimulus(rec.name, "plain", [*rnd.rows, *corners.rows], masks, weights)


def _resets(stim: Stimulus, row_op: bool) -> list[int]:
    """Input indices before which the bench resets: every third row start (elementwise: every
    400th element), never before the first."""
    starts = stim.row_starts()
    if row_op:
        return [s for j, s in enumerate(starts) if j and j % 3 == 0]
    return [s for s in range(400, stim.elements, 400)]


def dut_face(manifest: dict) -> tuple[str, list[str], str]:
    """How the bench's stream signals (``clk``, ``rst``, ``i_valid``/``i_ready``/``i_payload``,
    ``o_valid``/``o_ready``/``o_payload``) meet the DUT's ports: ``(adapter Verilog, port
    connections, an expression true when an output's interface bits are wrong)``.

    An AXI4-Stream top gets ``aresetn = ~rst``, tdata/tlast/tuser cut from the packed input word,
    and the output word assembled from m_axis_tdata and m_axis_tlast; the check covers tdata's
    padding (the sign or zeros) and, where tlast is carried beside the elements, that it comes back
    with its element (the bench sets it on every seventh element)."""
    info = interface_info(manifest)
    if info["kind"] == Interface.STREAM:
        return "", [".clk(clk)", ".rst(rst)", ".i__valid(i_valid)", ".i__ready(i_ready)", ".i__payload(i_payload)",
                    ".o__valid(o_valid)", ".o__ready(o_ready)", ".o__payload(o_payload)"], "1'b0"
    pk, ipay, opay = info["packing"], payload_port(manifest, "i"), payload_port(manifest, "o")

    def bits(port, name, signal):
        f = _field(port, name)
        f = f or ({"offset": 0, "width": port["width"]} if name == "data" else None)
        return None if f is None else f"{signal}[{f['offset'] + f['width'] - 1}:{f['offset']}]"

    tw, mw = pk["s_axis_tdata"]["width"], pk["m_axis_tdata"]["width"]
    fw, iw = pk["m_axis_tdata"]["field_width"], pk["s_axis_tdata"]["field_width"]
    pad = f"{{{tw - iw}{{1'b0}}}}, " if tw > iw else ""
    lines = ["  wire [{0}:0] s_tdata = {{{1}{2}}};".format(tw - 1, pad, bits(ipay, "data", "i_payload")),
             f"  wire [{mw - 1}:0] m_tdata;", "  wire m_tlast;"]
    carried = pk["s_axis_tlast"] == "carried"
    lines.append(f"  wire s_tlast = {'k % 7 == 6' if carried else bits(ipay, 'last', 'i_payload')};")
    conns = [".aclk(clk)", ".aresetn(~rst)", ".s_axis_tvalid(i_valid)", ".s_axis_tready(i_ready)",
             ".s_axis_tdata(s_tdata)", ".s_axis_tlast(s_tlast)", ".m_axis_tvalid(o_valid)", ".m_axis_tready(o_ready)",
             ".m_axis_tdata(m_tdata)", ".m_axis_tlast(m_tlast)"]
    if pk["s_axis_tuser"]:
        user = [bits(ipay, u["name"], "i_payload") for u in sorted(pk["s_axis_tuser"], key=lambda u: -u["tuser_bit"])]
        conns.append(f".s_axis_tuser({{{', '.join(user)}}})")
    # the output word in the operator's payload layout: data from tdata's low bits, last from tlast
    parts = []
    for f in sorted(opay.get("fields") or [{"name": "data", "offset": 0, "width": opay["width"]}],
                    key=lambda f: -f["offset"]):
        parts.append("m_tlast" if f["name"] == "last" else f"m_tdata[{f['width'] - 1}:0]")
    lines.append(f"  assign o_payload = {{{', '.join(parts)}}};")
    top_bits = "m_tdata[{0}:{1}]".format(mw - 1, fw) if mw > fw else None
    ext = f"{{{mw - fw}{{m_tdata[{fw - 1}]}}}}" if pk["m_axis_tdata"]["signed"] else f"{mw - fw}'d0"
    checks = [f"({top_bits} !== {ext})"] if top_bits else []
    if carried:
        checks.append("(m_tlast !== (m % 7 == 6))")
    return "\n".join(lines) + "\n", conns, " || ".join(checks) or "1'b0"


def testbench_verilog(manifest: dict, n_in: int, n_out: int, *, pv: int = 200, pr: int = 180,
                      seed: int = 1, timeout: int = 200_000) -> str:
    """The testbench module (see the module docstring) for ``n_in`` inputs and ``n_out`` outputs."""
    ports = {p["name"]: p for p in manifest["ports"]}
    iw, ow = payload_port(manifest, "i")["width"], payload_port(manifest, "o")["width"]
    top, tb = manifest["top"], bench_top(manifest)
    side, flags = side_ports(manifest)
    adapter, conns, face_error = dut_face(manifest)
    conns = [*conns, *side]
    flag_decl = "".join(f"  wire [{ports[f]['width'] - 1}:0] flag_{f};\n" for f in flags)
    flag_or = " | ".join(f"(|flag_{f})" for f in flags) or "1'b0"
    return f"""`timescale 1ns/1ps
// {tb}: plain-Verilog self-checking testbench of {top} (configuration {manifest['config_hash']}),
// generated by spikeops (spikeops.verif.plain_tb) from {top}.json.  Run with Icarus:
//   iverilog -g2005 -o {tb}.vvp {tb}.v {' '.join(manifest['files'])} && vvp {tb}.vvp
// or Verilator: verilator --binary --timing -Wno-fatal --top-module {tb} {tb}.v {' '.join(manifest['files'])}
// It prints one line "spikeops_tb: PASS ..." or "spikeops_tb: FAIL ...".
module {tb};
  parameter N_IN = {n_in};
  parameter N_OUT = {n_out};
  parameter TIMEOUT = {timeout};
  reg  [{iw - 1}:0] stim [0:N_IN - 1];
  reg  [{ow - 1}:0] expd [0:N_OUT - 1];
  reg               ctl  [0:N_IN - 1];
  reg  [8*512-1:0]  stim_file, expected_file, ctl_file;
  reg  [31:0]       pv, pr, seed;

  reg  clk = 1'b0;
  always #5 clk = ~clk;

  reg  [1:0]  rst_cnt = 2'd0;  // no reset at start: the design runs from its declared initial state
  wire        rst = rst_cnt != 2'd0;
  reg         i_valid = 1'b0;
  reg         o_ready = 1'b0;
  wire        i_ready, o_valid;
  wire [{ow - 1}:0] o_payload;
  reg  [31:0] k = 0, m = 0, cycles = 0, idle = 0, errors = 0, resets = 0, lfsr = 1, after = 0;
  reg  [31:0] last_reset_k = 32'hffffffff;
  reg         held = 1'b0, finished = 1'b0, stream_error = 1'b0, flag_seen = 1'b0;
  reg  [{ow - 1}:0] held_payload = 0;
  wire [{iw - 1}:0] i_payload = stim[k < N_IN ? k : 0];
{flag_decl}  wire        flags = {flag_or};
{adapter}
  {top} dut ({', '.join(conns)});

  initial begin
    if (!$value$plusargs("stim=%s", stim_file)) stim_file = "{tb}_stim.hex";
    if (!$value$plusargs("expected=%s", expected_file)) expected_file = "{tb}_expected.hex";
    if (!$value$plusargs("ctl=%s", ctl_file)) ctl_file = "{tb}_ctl.hex";
    if (!$value$plusargs("pv=%d", pv)) pv = {pv};
    if (!$value$plusargs("pr=%d", pr)) pr = {pr};
    if (!$value$plusargs("seed=%d", seed)) seed = {seed};
    $readmemh(stim_file, stim);
    $readmemh(expected_file, expd);
    $readmemh(ctl_file, ctl);
    lfsr = seed | 1;
  end

  // xorshift32
  wire [31:0] x1 = lfsr ^ (lfsr << 13);
  wire [31:0] x2 = x1 ^ (x1 >> 17);
  wire [31:0] lfsr_next = x2 ^ (x2 << 5);
  // the DUT's handshake outputs must be known from the first edge on (no X waiting for an event)
  wire        unknown = ((^{{i_ready, o_valid}}) === 1'bx) && !rst;
  wire        fire_i = i_valid & i_ready & ~rst;
  wire        fire_o = o_valid & o_ready & ~rst;
  wire [31:0] k_next = k + fire_i;
  wire [31:0] m_next = m + fire_o;

  always @(posedge clk) begin
    cycles <= cycles + 1;
    lfsr <= lfsr_next;
    idle <= (fire_i | fire_o) ? 0 : idle + 1;
    if (flags) flag_seen <= 1'b1;
    // the stream rule on the output: valid and payload hold until taken
    if (!rst && held && (!o_valid || o_payload !== held_payload)) stream_error <= 1'b1;
    held <= o_valid & ~o_ready & ~rst;
    held_payload <= o_payload;
    if (fire_o) begin
      if (m >= N_OUT) begin
        errors <= errors + 1;
        $display("spikeops_tb: output %0d is one too many (payload %h)", m, o_payload);
      end else if (o_payload !== expd[m]) begin
        errors <= errors + 1;
        if (errors < 10)
          $display("spikeops_tb: output %0d (cycle %0d): expected %h, got %h", m, cycles, expd[m], o_payload);
      end else if ({face_error}) begin
        errors <= errors + 1;
        if (errors < 10)
          $display("spikeops_tb: output %0d (cycle %0d): the interface's padding or tlast is wrong", m, cycles);
      end
      m <= m + 1;
    end
    if (rst) begin
      rst_cnt <= rst_cnt - 1;
      i_valid <= 1'b0;
      o_ready <= 1'b0;
    end else begin
      k <= k_next;
      o_ready <= {{24'b0, lfsr[15:8]}} < pr;
      if (i_valid && !i_ready) begin
        i_valid <= 1'b1;  // presented: held until taken
      end else if (k_next < N_IN && ctl[k_next] && last_reset_k != k_next) begin
        // a reset before this element, once every earlier output has arrived
        i_valid <= 1'b0;
        if (m_next == k_next) begin
          rst_cnt <= 2'd2;
          last_reset_k <= k_next;
          resets <= resets + 1;
          o_ready <= 1'b0;
        end
      end else begin
        i_valid <= (k_next < N_IN) && ({{24'b0, lfsr[7:0]}} < pv);
      end
    end
    if (m >= N_OUT) after <= after + 1;
    if (!finished && (after == 64 || idle == TIMEOUT || unknown)) begin
      finished <= 1'b1;
      if (unknown) begin
        $display("spikeops_tb: FAIL {manifest['op']}: i__ready or o__valid unknown (X) at cycle %0d, after %0d of %0d outputs",
                 cycles, m, N_OUT);
        $fatal(1, "spikeops_tb: failed");
      end else if (idle == TIMEOUT) begin
        $display("spikeops_tb: FAIL {manifest['op']}: timeout after %0d of %0d outputs (%0d of %0d inputs taken)",
                 m, N_OUT, k, N_IN);
        $fatal(1, "spikeops_tb: failed");
      end else if (errors != 0 || stream_error || flag_seen) begin
        $display("spikeops_tb: FAIL {manifest['op']}: %0d of %0d outputs wrong%s%s", errors, N_OUT,
                 stream_error ? ", output stream rule broken" : "", flag_seen ? ", status flag raised" : "");
        $fatal(1, "spikeops_tb: failed");
      end else begin
        $display("spikeops_tb: PASS {manifest['op']}: %0d outputs equal to the golden model in %0d cycles, %0d resets",
                 N_OUT, cycles, resets);
        $finish;
      end
    end
  end
endmodule
"""


def write_testbench(manifest: dict, out_dir, cfg=None, stim: Stimulus | None = None, *, seed: int = 0,
                    pv: int = 200, pr: int = 180) -> list[Path]:
    """Write ``<top>_tb.v`` and its three data files into ``out_dir`` (beside the operator's
    Verilog); ``stim`` defaults to :func:`default_stimulus`.  Returns the paths."""
    rec = registry.get(manifest["op"])
    cfg = cfg if cfg is not None else rec.config.from_json(manifest["config"])
    stim = stim if stim is not None else default_stimulus(manifest, cfg, seed=seed)
    expected = stim.expected(cfg)
    words_in = pack(stim, manifest)
    words_out = output_words(manifest, expected, [len(r) for r in stim.rows] if rec.shape.is_row
                             else [1] * stim.elements)
    resets = set(_resets(stim, rec.shape.is_row))
    out = Path(out_dir)
    tb = bench_top(manifest)
    files = {f"{tb}.v": testbench_verilog(manifest, len(words_in), len(words_out), pv=pv, pr=pr, seed=seed + 1),
             f"{tb}_stim.hex": "".join(f"{w:x}\n" for w in words_in),
             f"{tb}_expected.hex": "".join(f"{w:x}\n" for w in words_out),
             f"{tb}_ctl.hex": "".join("1\n" if j in resets else "0\n" for j in range(len(words_in)))}
    paths = []
    for name, text in files.items():
        (out / name).write_text(text)
        paths.append(out / name)
    return paths


@dataclass
class PlainResult:
    sim: str
    passed: bool
    line: str
    outputs: int
    cycles: int
    resets: int
    seconds: float
    log: str


_PASS = re.compile(r"spikeops_tb: PASS \S+: (\d+) outputs equal to the golden model in (\d+) cycles, (\d+) resets")


def run_testbench(manifest: dict, rtl_dir, sim: str, *, build_dir=None, timeout: float = 1800,
                  icarus_std: str = "2005") -> PlainResult:
    """Compile and run the plain testbench written in ``rtl_dir`` on ``sim`` (``icarus``: iverilog
    ``-g<icarus_std>`` (``2005`` or ``2012``) and vvp; ``verilator``: ``--binary --timing``), in
    ``build_dir`` (default ``rtl_dir/plain-<sim>``); the files are read as written."""
    if icarus_std not in ("2005", "2012"):
        raise ValueError(f"run_testbench: icarus_std={icarus_std!r} is not allowed; allowed: '2005', '2012'")
    reason = env.unavailable_reason(sim)
    if reason:
        raise RuntimeError(f"{sim}: {reason}")
    rtl = Path(rtl_dir).resolve()
    tb = bench_top(manifest)
    work = Path(build_dir or rtl / f"plain-{sim}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    for name in (f"{tb}_stim.hex", f"{tb}_expected.hex", f"{tb}_ctl.hex"):
        shutil.copy(rtl / name, work / name)
    sources = [str(rtl / f"{tb}.v"), *(str(rtl / f) for f in manifest["files"]),
               *(str(rtl / f) for f in manifest.get("simulation_files", []))]
    t0 = time.perf_counter()
    if sim == "icarus":
        steps = [["iverilog", f"-g{icarus_std}", "-o", f"{tb}.vvp", *sources], ["vvp", "-n", f"{tb}.vvp"]]
    else:
        steps = [[env.verilator_command(), "--binary", "--timing", "-Wno-fatal", "-O1", "-j", "2",
                  "--top-module", tb, "-Mdir", "obj_dir", "-o", tb, *sources], [str(work / "obj_dir" / tb)]]
    log = []
    for j, cmd in enumerate(steps):
        r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
        log.append(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
        if r.returncode != 0 and j == 0:  # the build failed (a failed run prints its verdict)
            return PlainResult(sim, False, f"{cmd[0]} exited with {r.returncode}", 0, 0, 0,
                               time.perf_counter() - t0, "\n".join(log))
    text = "\n".join(log)
    lines = [line for line in text.splitlines() if line.startswith("spikeops_tb: ")]
    verdict = next((line for line in lines if line.startswith(("spikeops_tb: PASS", "spikeops_tb: FAIL"))),
                   "no verdict printed")
    m = _PASS.search(verdict) if r.returncode == 0 else None
    return PlainResult(sim, m is not None, verdict, int(m[1]) if m else 0, int(m[2]) if m else 0,
                       int(m[3]) if m else 0, time.perf_counter() - t0, text)
