"""The spiking network on the command line: ``spikeops eval --snn`` rows (float and spikeops
nonlinear operators side by side, activity and energy, kept and resumed), ``spikeops capture
--snn`` (the integer totals inside the network), and their refusals; on a tiny Llama saved as a
local model folder."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from spikeops.gen.cli import main  # noqa: E402
from spikeops.gen.llm import capture as cap  # noqa: E402
from spikeops.gen.llm.snn import SNNConfig  # noqa: E402
from spikeops.gen.llm.snn.table import snn_configs  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_models import save_tiny_llama
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


def test_snn_specs_give_float_and_spikeops_rows():
    rows = snn_configs(["T=2,L=4", "mode=qann,ops=float", "T=2,L=4"])
    assert [c.describe() for c in rows] == ["SNN T=2 L=4 W8A8, float ops", "SNN T=2 L=4 W8A8",
                                            "QANN W8A8, float ops"]
    with pytest.raises(ValueError, match=r"snn: unknown key 'Q'"):
        snn_configs(["Q=3"])


def test_eval_snn_rows_score_account_and_resume(tiny, tmp_path, capsys, monkeypatch):
    from spikeops.gen.llm import evaluate

    out = tmp_path / "ev"
    args = ["eval", "--model", str(tiny), "--tasks", "piqa", "--limit", "3", "--ppl-limit", "2",
            "--calibration-texts", "2", "--speed-repeats", "0", "--snn", "T=2,L=4", "--snn", "mode=qann",
            "--out", str(out)]
    calls, real = [], evaluate.multiple_choice_task
    monkeypatch.setattr(evaluate, "multiple_choice_task", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    assert main(args) == 0
    rep = json.loads((out / "eval.json").read_text())
    labels = ["original", "SNN T=2 L=4 W8A8, float ops", "SNN T=2 L=4 W8A8", "QANN W8A8, float ops", "QANN W8A8"]
    assert list(rep["rows"]) == labels  # no ANN ablation rows unless asked for
    nets = [c.model for c in calls]
    assert [type(n).__name__ for n in nets[1:]] == ["SpikingLlama"] * 4
    assert [n.snn.describe() for n in nets[1:]] == labels[1:]
    for label in labels[1:]:
        row = rep["rows"][label]
        assert SNNConfig.from_json(row["snn"]).describe() == label
        assert row["tasks"]["piqa"]["docs"] == 3 and 1 < row["lambada"]["perplexity"] < 1e4
        a = row["activity"]
        assert a["tokens"] > 0 and a["energy_ratio"] > 0 and 0 < a["operators_share_of_energy"] < 1
        assert a["ann_mac_per_token"] > 0 and a["spikes_per_neuron"] > 0
    snn = rep["rows"]["SNN T=2 L=4 W8A8"]["activity"]
    assert snn["steps_run"] == 2 and set(snn["settle_per_layer"]) == {"0", "1", "final"}
    assert rep["rows"]["QANN W8A8"]["activity"]["steps_run"] == 1
    # the spikeops operators really run: their row differs from the float operators' row
    assert (rep["rows"]["QANN W8A8"]["lambada"]["perplexity"]
            != rep["rows"]["QANN W8A8, float ops"]["lambada"]["perplexity"])
    md = (out / "eval.md").read_text()
    assert "| SNN T=2 L=4 W8A8 |" in md and "Activity and energy per token" in md
    assert "What the spikeops operators cost against float operators" in md and "| QANN W8A8 | " in md
    piqa = rep["rows"]["QANN W8A8"]["tasks"]["piqa"]
    assert len(piqa["correct"]) == 3 and piqa["correct"].count("1") == round(piqa["acc"] * 3)
    assert (out / "plan-snn.json").exists()
    n = len(calls)
    assert main(args) == 0 and len(calls) == n  # every row kept: nothing recomputed
    assert main(args[:-4] + ["--snn", "T=3,L=4", "--rows", "SNN T=3 L=4 W8A8", "--out", str(out)]) == 0
    assert len(calls) == n + 1 and calls[-1].model.snn.T == 3
    # a calibration that came out different (another CPU's float sums) never reuses these rows
    from spikeops.gen.llm.snn import Calibration
    key = json.loads((out / "rows" / "QANN W8A8.json".replace(" ", "-")).read_text())["key"]
    assert len(key["calibration"]) == 16
    monkeypatch.setattr(Calibration, "digest", lambda self: "0" * 16)
    n = len(calls)
    assert main(args[:-2] + ["--rows", "QANN W8A8", "--out", str(out)]) == 0
    assert len(calls) == n + 1 and "were made with other settings" in capsys.readouterr().out


def test_a_t_sweep_is_one_pass_and_each_row_equals_its_own_run(tiny, tmp_path, monkeypatch):
    from spikeops.gen.llm import evaluate
    from spikeops.gen.llm.jobs import plan_jobs
    from spikeops.gen.llm.table import row_groups

    base = ["eval", "--model", str(tiny), "--tasks", "piqa", "--limit", "3", "--ppl-limit", "2",
            "--calibration-texts", "2", "--speed-repeats", "0"]
    calls, real = [], evaluate.multiple_choice_task
    monkeypatch.setattr(evaluate, "multiple_choice_task",
                        lambda *a, **k: calls.append((getattr(a[0].model, "snn", None) and a[0].model.snn.T,
                                                      k.get("views"))) or real(*a, **k))
    sweep = tmp_path / "sweep"
    specs = ["--snn", "T=1,L=4,ops=spikeops", "--snn", "T=2,L=4,ops=spikeops", "--snn", "T=4,L=4,ops=spikeops"]
    assert main(base + specs + ["--out", str(sweep)]) == 0
    assert calls == [(None, None), (4, [1, 2, 4])]  # the float row; one pass at the largest T, a view per row
    assert list(json.loads((sweep / "eval.json").read_text())["rows"]) == ["original"] + [
        f"SNN T={t} L=4 W8A8" for t in (1, 2, 4)]
    png = sweep / "accuracy-vs-T.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    alone = tmp_path / "alone"
    for t in (1, 2, 4):
        assert main(base + ["--snn", f"T={t},L=4,ops=spikeops", "--out", str(alone)]) == 0
    assert calls[2:] == [(None, None), (1, None), (2, None), (4, None)]
    kept = lambda out, t: json.loads((out / "rows" / f"SNN-T={t}-L=4-W8A8.json").read_text())["results"]
    for t in (1, 2, 4):
        g, w = kept(sweep, t), kept(alone, t)
        assert g["piqa"]["acc"] == w["piqa"]["acc"], t
        assert g["lambada"]["nll"] == w["lambada"]["nll"], t  # the same floats, bit for bit
        assert g["activity"]["steps_run"] == w["activity"]["steps_run"] == t
    assert len({kept(sweep, t)["lambada"]["nll"] for t in (1, 2, 4)}) == 3
    # kept: a rerun scores nothing; each row kept on its own
    n = len(calls)
    assert main(base + specs + ["--out", str(sweep)]) == 0 and len(calls) == n
    assert all((sweep / "rows" / f"SNN-T={t}-L=4-W8A8.json").exists() for t in (1, 2, 4))
    # as jobs: a step group is one job (its shards), the other rows one each
    snn = ["T=1,L=4", "T=3,L=4", "mode=qann"]
    rows = ["original", "SNN T=1 L=4 W8A8, float ops", "SNN T=1 L=4 W8A8", "SNN T=3 L=4 W8A8, float ops",
            "SNN T=3 L=4 W8A8", "QANN W8A8, float ops", "QANN W8A8"]
    groups = row_groups(rows, snn)
    assert groups == ["original", ("SNN T=1 L=4 W8A8, float ops", "SNN T=3 L=4 W8A8, float ops"),
                      ("SNN T=1 L=4 W8A8", "SNN T=3 L=4 W8A8"), "QANN W8A8, float ops", "QANN W8A8"]
    assert row_groups(rows[2:3], snn) == ["SNN T=1 L=4 W8A8"]
    jobs = plan_jobs(groups, {}, jobs=2, shards=2)
    assert jobs[2].rows == ["SNN T=1 L=4 W8A8, float ops", "SNN T=3 L=4 W8A8, float ops"]
    assert jobs[2].describe() == "SNN T=1 L=4 W8A8, float ops + SNN T=3 L=4 W8A8, float ops (shard 0/2)"
    assert len(jobs) == 10


def test_the_operators_cost_against_float_operators_and_the_target():
    from spikeops.gen.llm.snn.table import format_ops_cost, ops_cost

    def row(accs, ppl, snn=True):
        r = {"tasks": {t: {"acc": a} for t, a in accs.items()}, "avg": {"acc": sum(accs.values()) / len(accs)},
             "lambada": {"perplexity": ppl}}
        return dict(r, snn={}) if snn else r

    rows = {"original": row({"piqa": 0.7, "arc_easy": 0.5}, 40.0, snn=False),
            "A, float ops": row({"piqa": 0.700, "arc_easy": 0.500}, 50.0), "A": row({"piqa": 0.695, "arc_easy": 0.500}, 50.5),
            "B, float ops": row({"piqa": 0.700, "arc_easy": 0.500}, 50.0), "B": row({"piqa": 0.685, "arc_easy": 0.510}, 49.0),
            "C, float ops": row({"piqa": 0.700, "arc_easy": 0.500}, 50.0), "C": row({"piqa": 0.690, "arc_easy": 0.500}, 50.0),
            "D": row({"piqa": 0.1, "arc_easy": 0.1}, 1e3)}  # no float-ops twin: not compared
    cost = {c["network"]: c for c in ops_cost(rows)}
    assert list(cost) == ["A", "B", "C"]
    assert cost["A"]["meets_target"] and cost["A"]["avg_drop"] == pytest.approx(0.25)
    assert cost["A"]["ppl_change_percent"] == pytest.approx(1.0)
    assert not cost["B"]["meets_target"] and cost["B"]["worst_task"] == "piqa"  # 1.5 on one task
    assert cost["B"]["avg_drop"] == pytest.approx(0.25) and cost["B"]["worst_drop"] == pytest.approx(1.5)
    assert not cost["C"]["meets_target"] and cost["C"]["avg_drop"] == pytest.approx(0.5)  # the average
    md = format_ops_cost(rows, {"piqa": "PIQA"})
    assert "| A | +0.25 | PIQA (+0.5) | - | +1.00 % | met |" in md
    assert "| B | +0.25 | PIQA (+1.5) | - | -2.00 % | missed |" in md
    assert format_ops_cost({"original": rows["original"]}) == ""
    # with the documents each row got right: the paired comparison
    rows["A, float ops"]["tasks"]["piqa"]["correct"] = "1" * 12 + "0" * 8
    rows["A"]["tasks"]["piqa"]["correct"] = "0" * 10 + "11" + "0" * 8  # 10 lost, 0 gained: p = 2 / 2**10
    for r in ("A, float ops", "A"):
        rows[r]["tasks"]["arc_easy"]["correct"] = "10" * 10
    a = {c["network"]: c for c in ops_cost(rows)}["A"]
    assert a["worst_paired"] == {"only_a": 10, "only_b": 0, "p": pytest.approx(2 / 1024)}
    assert a["paired"]["only_a"] == 10 and a["paired"]["only_b"] == 0
    assert "| A | +0.25 | piqa (+0.5; 10 / 0 (p 0.00)) | 10 / 0 (p 0.00) |" in format_ops_cost(rows)


def test_mcnemar_is_the_exact_binomial_test():
    from spikeops.gen.llm.evaluate import mcnemar

    assert mcnemar("1100", "1100") == {"only_a": 0, "only_b": 0, "p": 1.0}
    assert mcnemar("10", "01") == {"only_a": 1, "only_b": 1, "p": 1.0}
    m = mcnemar("111110", "000001")  # 5 against 1: 2 * (1 + 6) / 64
    assert (m["only_a"], m["only_b"]) == (5, 1) and m["p"] == pytest.approx(14 / 64)
    assert mcnemar("10", "1") is None and mcnemar("", "") is None


def test_capture_snn_records_the_totals_inside_the_network(tiny, tmp_path):
    from spikeops.gen.llm.plan import Plan

    plan = tmp_path / "plan.json"
    assert main(["convert", "--model", str(tiny), "--calibration-texts", "2", "--snn", "T=2,L=4",
                 "--plan", str(plan)]) == 0
    assert Plan.load(plan).snn == SNNConfig.parse("T=2,L=4")  # the plan records the network
    path = tmp_path / "snn.npz"
    assert main(["capture", "--model", str(tiny), "--prompts", "2", "--max-rows", "4", "--calibration-texts", "2",
                 "--plan", str(plan), "-o", str(path)]) == 0
    c = cap.load(path)
    assert c.meta["snn"] == SNNConfig.parse("T=2,L=4").spec() and c.meta["network"] == "SNN T=2 L=4 W8A8"
    names = {i.name for i in c.instances}
    assert "model.layers.1.self_attn" in names and "model.norm" in names
    for item in c.instances:
        y = item.golden()
        assert len(item.x) == 4 and y.shape == item.x.shape and np.all(np.isfinite(y))


@pytest.mark.parametrize("argv, needles", [
    (["eval", "--snn", "T=0"], ["--snn 'T=0'", "T=0"]),
    (["eval", "--snn", "T=4,Q=1"], ["unknown key 'Q'", "allowed:"]),
    (["eval", "--model", "minilm", "--snn", "T=4"], ["--snn 'T=4' is not allowed for minilm", "Llama-family"]),
    (["capture", "--snn", "T=2", "--snn", "T=4"], ["--snn given 2 times", "one network per capture"]),
    (["capture", "--snn", "T=2", "--kinds", "softmax"], ["--snn 'T=2' with --kinds is not allowed",
                                                          "every kind and layer"]),
])
def test_bad_snn_options_are_refused_before_any_model_loads(argv, needles, tmp_path, capsys):
    rc = main(argv + (["--out", str(tmp_path / "o")] if argv[0] == "eval" else ["-o", str(tmp_path / "o.npz")]))
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("spikeops: error: ")
    for n in needles:
        assert n in err, (n, err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.npz").exists()


def test_lm_eval_adapter_scores_the_spiking_network(tiny):
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance

    from spikeops.gen.llm.lm_eval_adapter import SpikeOpsLM
    from spikeops.gen.llm.scoring import loglikelihoods

    lm = SpikeOpsLM.create_from_arg_string(f"model={tiny},snn=T=2;L=4,calibration_texts=2,quiet=True")
    assert type(lm.model).__name__ == "SpikingLlama" and lm.model.snn == SNNConfig.parse("T=2,L=4")
    assert lm.get_model_info()["spikeops_snn"] == lm.model.snn.spec()
    pairs = [("The cat sat on", " the mat."), ("The cat sat on", " a dog."), ("", "Hello world.")]
    got = lm.loglikelihood([Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)], disable_tqdm=True)
    ref = loglikelihoods(lm.loaded, pairs, batch_tokens=lm.batch_tokens, progress=False)
    assert [g[0] for g in got] == pytest.approx(ref, rel=1e-9, abs=1e-9) and all(np.isfinite(ref))
    with pytest.raises(ValueError, match=r"generate_until is not available for snn="):
        lm.generate_until([Instance("generate_until", {}, ("The cat", {"until": ["."]}), 0)])
    with pytest.raises(ValueError, match=r"model_args snn='T=2;Q=1' is not a network .*unknown key 'Q'"):
        SpikeOpsLM.create_from_arg_string(f"model={tiny},snn=T=2;Q=1")
    with pytest.raises(ValueError, match=r"model_args kinds='softmax' is given with snn"):
        SpikeOpsLM.create_from_arg_string(f"model={tiny},snn=T=2,kinds=softmax")


def test_a_plan_written_with_snn_brings_its_network_to_lm_eval(tiny, tmp_path):
    pytest.importorskip("lm_eval")
    from spikeops.gen.llm.lm_eval_adapter import SpikeOpsLM

    plan = tmp_path / "plan.json"
    assert main(["convert", "--model", str(tiny), "--calibration-texts", "2", "--snn", "mode=qann",
                 "--plan", str(plan)]) == 0
    lm = SpikeOpsLM.create_from_arg_string(f"model={tiny},plan={plan},calibration_texts=2,quiet=True")
    assert type(lm.model).__name__ == "SpikingLlama" and lm.model.snn == SNNConfig.parse("mode=qann")
    with pytest.raises(ValueError, match=r"model_args snn='T=2,L=16,W=8,A=8' differs from the plan's network 'T=4,L=16,W=8,A=8,mode=qann'"):
        SpikeOpsLM.create_from_arg_string(f"model={tiny},plan={plan},snn=T=2,quiet=True")
