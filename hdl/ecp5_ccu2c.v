// Behavioural simulation model of Lattice ECP5's CCU2C (two LUT4s and the carry logic between
// them), as Yosys' own ccu2c_sim.vh describes the cell: half h's LUT4 (INITh over {D, C, B, A})
// is the propagate and its output XOR the carry in is S; its LUT2 (INITh[3:0] over {B, A}) is the
// generate; COUT = LUT4 ? carry in : LUT2.  INJECT1_h = "YES" cuts the carry in and the generate of
// half h.  spikeops.hdl.carry instantiates it with INIT 0x96AA and INJECT1 "NO"; Yosys synthesises
// the cell from its own black box, never from this file; simulators read it beside the design.
`timescale 1ns/1ps
module CCU2C (
  input  CIN, A0, B0, C0, D0, A1, B1, C1, D1,
  output S0, S1, COUT
);
  parameter [15:0] INIT0 = 16'h0000;
  parameter [15:0] INIT1 = 16'h0000;
  parameter INJECT1_0 = "YES";
  parameter INJECT1_1 = "YES";

  wire lut4_0 = INIT0[{D0, C0, B0, A0}];
  wire lut2_0 = INIT0[{B0, A0}];
  wire inject_0 = (INJECT1_0 == "YES");
  assign S0 = lut4_0 ^ (inject_0 ? 1'b0 : CIN);
  wire cout_0 = (~lut4_0 & (inject_0 ? 1'b0 : lut2_0)) | (lut4_0 & CIN);

  wire lut4_1 = INIT1[{D1, C1, B1, A1}];
  wire lut2_1 = INIT1[{B1, A1}];
  wire inject_1 = (INJECT1_1 == "YES");
  assign S1 = lut4_1 ^ (inject_1 ? 1'b0 : cout_0);
  assign COUT = (~lut4_1 & (inject_1 ? 1'b0 : lut2_1)) | (lut4_1 & cout_0);
endmodule
