// Behavioural simulation model of Lattice ECP5's DP16KD block RAM for the modes spikeops instantiates
// (spikeops.hdl.dp16kd): both ports of the same DATA_WIDTH, 18 (1,024 words; the word address on
// AD[13:4], AD[1:0] the write's byte enables), 9 (2,048; AD[13:3]), 4 (4,096; AD[13:2]), 2 (8,192;
// AD[13:1]) or 1 (16,384; AD[13:0]), data on the low DATA_WIDTH bits of DI/DO; REGMODE "NOREG" or
// "OUTREG"; chip selects decoded "0b000" and tied low; WRITEMODE "NORMAL".  At a rising clock edge
// with CE high, a port with WE high writes DI to the addressed word (at 18 bits, the bytes whose
// enables are set) and keeps its data latch (NORMAL); with WE low the addressed word enters the
// latch.  With REGMODE "OUTREG" the latch enters the output register at the next edge with OCE high,
// and DO shows that register (with "NOREG", DO shows the latch).  RST, when high at an edge, clears
// the latch and the output register.  A read of the word the other port writes at the same edge
// gives the old word here (in the block it is unspecified; spikeops never makes one).  The initial
// contents are INITVAL_00 .. INITVAL_3F, laid out for the 18-bit mode: word 16 j + i in bits
// [20 i + 17 : 20 i] of INITVAL_j; other modes start at zero and stop the simulation at time 0 if
// given contents.  Any other mode stops it too.  Yosys synthesises the primitive from its own black
// box (cells_bb_ecp5.v), never from this file.
`timescale 1ns/1ps
module DP16KD (
  input  ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12, ADA13,
  input  DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12, DIA13, DIA14, DIA15, DIA16, DIA17,
  input  CLKA, CEA, OCEA, WEA, RSTA, CSA0, CSA1, CSA2,
  output DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11, DOA12, DOA13, DOA14, DOA15, DOA16, DOA17,
  input  ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12, ADB13,
  input  DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12, DIB13, DIB14, DIB15, DIB16, DIB17,
  input  CLKB, CEB, OCEB, WEB, RSTB, CSB0, CSB1, CSB2,
  output DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11, DOB12, DOB13, DOB14, DOB15, DOB16, DOB17
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter RESETMODE = "SYNC";
  parameter GSR = "ENABLED";
  parameter [319:0] INITVAL_00 = 320'h0, INITVAL_01 = 320'h0, INITVAL_02 = 320'h0, INITVAL_03 = 320'h0;
  parameter [319:0] INITVAL_04 = 320'h0, INITVAL_05 = 320'h0, INITVAL_06 = 320'h0, INITVAL_07 = 320'h0;
  parameter [319:0] INITVAL_08 = 320'h0, INITVAL_09 = 320'h0, INITVAL_0A = 320'h0, INITVAL_0B = 320'h0;
  parameter [319:0] INITVAL_0C = 320'h0, INITVAL_0D = 320'h0, INITVAL_0E = 320'h0, INITVAL_0F = 320'h0;
  parameter [319:0] INITVAL_10 = 320'h0, INITVAL_11 = 320'h0, INITVAL_12 = 320'h0, INITVAL_13 = 320'h0;
  parameter [319:0] INITVAL_14 = 320'h0, INITVAL_15 = 320'h0, INITVAL_16 = 320'h0, INITVAL_17 = 320'h0;
  parameter [319:0] INITVAL_18 = 320'h0, INITVAL_19 = 320'h0, INITVAL_1A = 320'h0, INITVAL_1B = 320'h0;
  parameter [319:0] INITVAL_1C = 320'h0, INITVAL_1D = 320'h0, INITVAL_1E = 320'h0, INITVAL_1F = 320'h0;
  parameter [319:0] INITVAL_20 = 320'h0, INITVAL_21 = 320'h0, INITVAL_22 = 320'h0, INITVAL_23 = 320'h0;
  parameter [319:0] INITVAL_24 = 320'h0, INITVAL_25 = 320'h0, INITVAL_26 = 320'h0, INITVAL_27 = 320'h0;
  parameter [319:0] INITVAL_28 = 320'h0, INITVAL_29 = 320'h0, INITVAL_2A = 320'h0, INITVAL_2B = 320'h0;
  parameter [319:0] INITVAL_2C = 320'h0, INITVAL_2D = 320'h0, INITVAL_2E = 320'h0, INITVAL_2F = 320'h0;
  parameter [319:0] INITVAL_30 = 320'h0, INITVAL_31 = 320'h0, INITVAL_32 = 320'h0, INITVAL_33 = 320'h0;
  parameter [319:0] INITVAL_34 = 320'h0, INITVAL_35 = 320'h0, INITVAL_36 = 320'h0, INITVAL_37 = 320'h0;
  parameter [319:0] INITVAL_38 = 320'h0, INITVAL_39 = 320'h0, INITVAL_3A = 320'h0, INITVAL_3B = 320'h0;
  parameter [319:0] INITVAL_3C = 320'h0, INITVAL_3D = 320'h0, INITVAL_3E = 320'h0, INITVAL_3F = 320'h0;

  wire [20479:0] init = {INITVAL_3F, INITVAL_3E, INITVAL_3D, INITVAL_3C, INITVAL_3B, INITVAL_3A, INITVAL_39, INITVAL_38,
                         INITVAL_37, INITVAL_36, INITVAL_35, INITVAL_34, INITVAL_33, INITVAL_32, INITVAL_31, INITVAL_30,
                         INITVAL_2F, INITVAL_2E, INITVAL_2D, INITVAL_2C, INITVAL_2B, INITVAL_2A, INITVAL_29, INITVAL_28,
                         INITVAL_27, INITVAL_26, INITVAL_25, INITVAL_24, INITVAL_23, INITVAL_22, INITVAL_21, INITVAL_20,
                         INITVAL_1F, INITVAL_1E, INITVAL_1D, INITVAL_1C, INITVAL_1B, INITVAL_1A, INITVAL_19, INITVAL_18,
                         INITVAL_17, INITVAL_16, INITVAL_15, INITVAL_14, INITVAL_13, INITVAL_12, INITVAL_11, INITVAL_10,
                         INITVAL_0F, INITVAL_0E, INITVAL_0D, INITVAL_0C, INITVAL_0B, INITVAL_0A, INITVAL_09, INITVAL_08,
                         INITVAL_07, INITVAL_06, INITVAL_05, INITVAL_04, INITVAL_03, INITVAL_02, INITVAL_01, INITVAL_00};
  localparam SHIFT = DATA_WIDTH_A == 18 ? 4 : DATA_WIDTH_A == 9 ? 3 : DATA_WIDTH_A == 4 ? 2 : DATA_WIDTH_A == 2 ? 1 : 0;
  reg [17:0] mem [0:16383];
  integer w;
  initial begin
    if (DATA_WIDTH_A != DATA_WIDTH_B || (DATA_WIDTH_A != 18 && DATA_WIDTH_A != 9 && DATA_WIDTH_A != 4 &&
        DATA_WIDTH_A != 2 && DATA_WIDTH_A != 1) || CSDECODE_A != "0b000" || CSDECODE_B != "0b000" ||
        (REGMODE_A != "NOREG" && REGMODE_A != "OUTREG") || (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG") ||
        WRITEMODE_A != "NORMAL" || WRITEMODE_B != "NORMAL" || RESETMODE != "SYNC") begin
      $display("DP16KD model: only equal DATA_WIDTH 18/9/4/2/1, CSDECODE 0b000, REGMODE NOREG/OUTREG, WRITEMODE NORMAL and RESETMODE SYNC are modelled");
      $finish;
    end
    if (DATA_WIDTH_A != 18 && init != 20480'd0) begin
      $display("DP16KD model: initial contents are modelled at DATA_WIDTH 18 only");
      $finish;
    end
    // word w sits at bits [20 w + 17 : 20 w] of the concatenation (16 words of 20 bits per INITVAL)
    for (w = 0; w < 16384; w = w + 1)
      mem[w] = w < 1024 ? init[w * 20 +: 18] : 18'd0;
  end

  localparam [17:0] MASK = DATA_WIDTH_A == 18 ? 18'h3ffff : (18'd1 << DATA_WIDTH_A) - 18'd1;
  wire [13:0] ad_a = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
  wire [13:0] ad_b = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
  wire [13:0] addr_a = ad_a >> SHIFT;
  wire [13:0] addr_b = ad_b >> SHIFT;
  wire [17:0] di_a = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] di_b = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  // the bits a write changes: at 18 bits the bytes AD[1:0] enable, otherwise the word's width
  wire [17:0] be_a = DATA_WIDTH_A == 18 ? {{9{ad_a[1]}}, {9{ad_a[0]}}} : MASK;
  wire [17:0] be_b = DATA_WIDTH_A == 18 ? {{9{ad_b[1]}}, {9{ad_b[0]}}} : MASK;
  reg [17:0] latch_a = 18'd0, latch_b = 18'd0, out_a = 18'd0, out_b = 18'd0;
  always @(posedge CLKA) begin
    if (RSTA) begin
      latch_a <= 18'd0; out_a <= 18'd0;
    end else begin
      if (CEA && WEA) mem[addr_a] <= (mem[addr_a] & ~be_a) | (di_a & be_a);
      else if (CEA) latch_a <= mem[addr_a] & MASK;
      if (OCEA) out_a <= latch_a;
    end
  end
  always @(posedge CLKB) begin
    if (RSTB) begin
      latch_b <= 18'd0; out_b <= 18'd0;
    end else begin
      if (CEB && WEB) mem[addr_b] <= (mem[addr_b] & ~be_b) | (di_b & be_b);
      else if (CEB) latch_b <= mem[addr_b] & MASK;
      if (OCEB) out_b <= latch_b;
    end
  end
  wire [17:0] do_a = (REGMODE_A == "OUTREG") ? out_a : latch_a;
  wire [17:0] do_b = (REGMODE_B == "OUTREG") ? out_b : latch_b;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = do_a;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = do_b;
endmodule
