// Behavioural simulation model of Lattice ECP5's MULT18X18D for the modes spikeops instantiates
// (spikeops.hdl.dsp): P = A * B, signed or unsigned per SIGNEDA/SIGNEDB, each of the input A, input
// B, pipeline and output registers either off ("NONE") or on CLK0 with the clock enable CE0 and the
// synchronous reset RST0.  Only the ports spikeops connects are declared; any other mode stops the
// simulation at time 0.  Yosys synthesises the primitive from its own black box (cells_bb_ecp5.v),
// never from this file; simulators read it beside the emitted design.
`timescale 1ns/1ps
module MULT18X18D (
  input  A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
  input  B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
  input  SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,
  output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
  output P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33, P34, P35
);
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter GSR = "ENABLED";
  parameter RESETMODE = "SYNC";

  wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
  wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};

  initial begin
    if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0") ||
        (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0") ||
        (REG_PIPELINE_CLK != "NONE" && REG_PIPELINE_CLK != "CLK0") ||
        (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0") || RESETMODE != "SYNC") begin
      $display("MULT18X18D model: a register on a clock other than CLK0, or RESETMODE other than SYNC, is not modelled");
      $finish;
    end
  end

  reg [17:0] a_r = 18'd0, b_r = 18'd0;
  reg sa_r = 1'b0, sb_r = 1'b0;
  always @(posedge CLK0) begin
    if (RST0) begin
      a_r <= 18'd0; b_r <= 18'd0; sa_r <= 1'b0; sb_r <= 1'b0;
    end else if (CE0) begin
      a_r <= a; b_r <= b; sa_r <= SIGNEDA; sb_r <= SIGNEDB;
    end
  end
  wire [17:0] a_in = (REG_INPUTA_CLK == "NONE") ? a : a_r;
  wire [17:0] b_in = (REG_INPUTB_CLK == "NONE") ? b : b_r;
  wire sa = (REG_INPUTA_CLK == "NONE") ? SIGNEDA : sa_r;
  wire sb = (REG_INPUTB_CLK == "NONE") ? SIGNEDB : sb_r;
  // each operand extended to 36 bits by its sign (when signed) or by zeros, then multiplied
  wire [35:0] a_x = {{18{sa & a_in[17]}}, a_in};
  wire [35:0] b_x = {{18{sb & b_in[17]}}, b_in};
  wire [35:0] product = a_x * b_x;

  reg [35:0] pipe_r = 36'd0, out_r = 36'd0;
  wire [35:0] pipe_q = (REG_PIPELINE_CLK == "NONE") ? product : pipe_r;
  always @(posedge CLK0) begin
    if (RST0) begin
      pipe_r <= 36'd0; out_r <= 36'd0;
    end else if (CE0) begin
      pipe_r <= product; out_r <= pipe_q;
    end
  end
  wire [35:0] p = (REG_OUTPUT_CLK == "NONE") ? pipe_q : out_r;
  assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
          P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
endmodule
