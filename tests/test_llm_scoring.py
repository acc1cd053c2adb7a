"""Scoring with shared contexts, and the evaluation's kept rows (tiny models and fakes; no hub)."""

import json
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny_models import tiny_llama  # noqa: E402

from spikeops.gen.llm import evaluate  # noqa: E402
from spikeops.gen.llm.calibrate import observe  # noqa: E402
from spikeops.gen.llm.evaluate import evaluate_tasks  # noqa: E402
from spikeops.gen.llm.plan import apply_plan, make_plan  # noqa: E402
from spikeops.gen.llm.rowstore import RowStore, plan_digest, source_id  # noqa: E402
from spikeops.gen.llm.scoring import Timer, pack_limit, score_tokens, shared_packs  # noqa: E402
from spikeops.gen.llm.sites import discover  # noqa: E402
from spikeops.gen.llm.table import format_table  # noqa: E402

pytestmark = pytest.mark.usefixtures("numpy_backend")


def _tiny_llama(seed=0):
    return tiny_llama(seed, max_positions=128, eager=True)


def _lm(model):
    return SimpleNamespace(model=model, tokenizer=SimpleNamespace(pad_token_id=0, eos_token_id=1))


def _requests(seed=2):
    """Three questions with four choices each (shared contexts of 5-20 tokens, continuations of 1-9),
    plus requests whose context is too short to share and one with a unique context."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for c_len in (5, 12, 20):
        ctx = torch.randint(2, 97, (c_len,), generator=g).tolist()
        for n in (1, 3, 6, 9):
            cont = torch.randint(2, 97, (n,), generator=g).tolist()
            out.append((ctx + cont, n))
    out.append(([1, 5, 6, 7], 3))           # empty context: the end-of-text token alone
    out.append(([1, 9, 8, 7, 6, 5], 5))     # another, same one-token context: not shared (too short)
    out.append((list(range(2, 30)), 4))     # a context nobody else has
    return out


def test_shared_packs_group_by_context_and_respect_the_bounds():
    req = _requests()
    packs = shared_packs(req)
    assert sorted(map(sorted, packs)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12], [13], [14]]
    # max_pack splits a group (context 12: 12 + 0 + 2 + 5 fits 26 tokens, + 8 does not); a request
    # longer than max_pack on its own still gets a pack
    packs = shared_packs(req, max_pack=26)
    assert sorted(map(sorted, packs)) == [[0, 1, 2, 3], [4, 5, 6], [7], [8, 9], [10], [11], [12], [13], [14]]
    # a context shorter than min_shared is never shared
    assert [0] in shared_packs(req, min_shared=6) and [4, 5, 6, 7] in shared_packs(req, min_shared=6)


@pytest.mark.parametrize("converted", [False, True], ids=["float", "converted"])
def test_shared_context_scores_equal_separate_scores(converted):
    model = _tiny_llama()
    if converted:
        _converted(model)
    lm, req = _lm(model), _requests()
    t_alone, t_shared = Timer(), Timer()
    alone = score_tokens(lm, req, max_pack=0, timer=t_alone, progress=False)
    shared = score_tokens(lm, req, timer=t_shared, progress=False)
    # a continuation that saw another continuation, or a wrong position, moves its score by O(1)
    for (a, ga), (b, gb) in zip(alone, shared):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-5) and ga == gb
    assert t_alone.tokens == sum(len(ids) - 1 for ids, _ in req)
    # each context is read once instead of four times
    assert t_shared.tokens == t_alone.tokens - sum(3 * c for c in (5, 12, 20))
    # small batches: packs and lone requests in separate and in mixed batches give the same scores
    small = score_tokens(lm, req, batch_tokens=40, progress=False)
    for (a, _), (b, _) in zip(alone, small):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-5)


def _converted(model):
    ids = torch.randint(2, 97, (2, 24), generator=torch.Generator().manual_seed(3))
    apply_plan(model, make_plan(model, "llama", stats=observe(model, discover(model, "llama"), [ids])))
    return model


@pytest.mark.parametrize("converted", [False, True], ids=["float", "converted"])
def test_scores_equal_an_independent_forward_of_each_request(converted):
    """Reference: one plain forward per request, no batching, padding or packing."""
    model = _tiny_llama()
    if converted:
        _converted(model)
    req = _requests()
    got = score_tokens(_lm(model), req, batch_tokens=64, progress=False)  # packs, lone requests, padding
    with torch.no_grad():
        for (ids, n), (ll, greedy) in zip(req, got):
            logits = model(torch.tensor([ids[:-1]])).logits[0, -n:].float()
            target = torch.tensor(ids[-n:])
            ref = float(torch.log_softmax(logits, -1)[torch.arange(n), target].double().sum())
            assert ll == pytest.approx(ref, rel=1e-5, abs=1e-5)
            assert greedy == bool((logits.argmax(-1) == target).all())
    # a greedy continuation is flagged as such
    ids = _requests()[4][0][:12]
    with torch.no_grad():
        for _ in range(3):
            ids = ids + [int(model(torch.tensor([ids])).logits[0, -1].argmax())]
    [(_, greedy)] = score_tokens(_lm(model), [(ids, 3)], progress=False)
    assert greedy


def test_packs_stay_within_the_positions_and_the_softmax_row():
    model = _converted(_tiny_llama())
    assert pack_limit(model, 1024) == 128  # max_position_embeddings, and the softmax's d_max = 128
    g = torch.Generator().manual_seed(7)
    ctx = torch.randint(2, 97, (10,), generator=g).tolist()
    req = [(ctx + torch.randint(2, 97, (60,), generator=g).tolist(), 60) for _ in range(4)]
    assert max(len(p) for p in shared_packs(req, max_pack=128)) == 2  # 10 + 2 * 59 fits, 3 do not
    alone = score_tokens(_lm(model), req, max_pack=0, progress=False)
    shared = score_tokens(_lm(model), req, progress=False)  # a 1024-token pack would exceed d_max
    for (a, _), (b, _) in zip(alone, shared):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-5)
    model.config.sliding_window = 16  # a custom 4-D mask would drop the window: no sharing
    assert pack_limit(model, 1024) == 0


def test_score_tokens_names_a_request_that_does_not_fit():
    with pytest.raises(ValueError, match="3 scored tokens do not fit 3 ids"):
        score_tokens(_lm(_tiny_llama()), [([1, 2, 3], 3)], progress=False)


def test_row_store_keeps_results_per_task_and_refuses_other_settings(tmp_path):
    key = {"model": "m", "limit": 3, "plan": "abc"}
    store = RowStore(tmp_path, "norms only", key)
    assert store.results == {} and not store.stale
    store.save("piqa", {"acc": 0.5})
    path = tmp_path / "rows" / "norms-only.json"
    assert json.loads(path.read_text())["results"] == {"piqa": {"acc": 0.5}}
    assert RowStore(tmp_path, "norms only", key).results == {"piqa": {"acc": 0.5}}
    assert RowStore(tmp_path, "norms only", key, resume=False).results == {}
    other = RowStore(tmp_path, "norms only", dict(key, limit=4))
    assert other.results == {} and other.stale


def test_row_store_merges_what_two_processes_save(tmp_path):
    key = {"model": "m"}
    a, b = RowStore(tmp_path, "all", key), RowStore(tmp_path, "all", key)
    a.save("piqa", {"acc": 0.5})
    b.save("arc_easy", {"acc": 0.25})  # b never saw piqa: it merges what is on disk
    assert RowStore(tmp_path, "all", key).results == {"piqa": {"acc": 0.5}, "arc_easy": {"acc": 0.25}}
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == ["all.json", "all.json.lock"]


def _counting(lm):
    """``lm`` whose body counts its forward passes (one per batch)."""
    calls = []
    body = lm.model.model
    forward = body.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    body.forward = counted
    return calls


def test_shards_and_an_interrupted_run_give_the_uninterrupted_scores(tmp_path):
    """Two shards in separate stores (processes) and a run stopped after its first kept batch all
    end with the same numbers as one plain run: the same batches, the scores kept exactly."""
    lm, req = _lm(_tiny_llama()), _requests()
    plain = score_tokens(lm, req, batch_tokens=40, progress=False)
    key = {"model": "m"}
    # two shards, each in its own store (as two processes would have)
    a, b = RowStore(tmp_path, "all", key), RowStore(tmp_path, "all", key)
    ta, tb = Timer(), Timer()
    first = score_tokens(lm, req, batch_tokens=40, progress=False, timer=ta, resume=a.resume("piqa", (0, 2)))
    assert first is None                                  # shard 1's batches are not scored yet
    last = b.resume("piqa", (1, 2))
    assert 0 < len(last.kept) < len(req)                  # what shard 0 kept
    assert score_tokens(lm, req, batch_tokens=40, progress=False, timer=tb, resume=last) == plain
    assert last.totals["tokens"] == ta.tokens + tb.tokens and last.totals["tokens"] > 0
    b.save("piqa", {"acc": 1.0})                          # the task's result: its scores are dropped
    assert not a.partial_path.exists()

    # interrupted: the run stops after its first keep; the next resumes without re-scoring it
    store = RowStore(tmp_path, "float", key)
    crash = store.resume("arc_easy", every=0.0)
    real = crash._keep

    def keep_then_stop(*args):
        real(*args)
        raise KeyboardInterrupt

    crash._keep = keep_then_stop
    with pytest.raises(KeyboardInterrupt):
        score_tokens(lm, req, batch_tokens=40, progress=False, resume=crash)
    again = RowStore(tmp_path, "float", key).resume("arc_easy")
    calls = _counting(lm)
    assert score_tokens(lm, req, batch_tokens=40, progress=False, resume=again) == plain
    batches = len(calls)
    calls.clear()
    score_tokens(lm, req, batch_tokens=40, progress=False)
    assert batches == len(calls) - 1                      # every batch but the kept one
    # --fresh (resume=False) drops what was kept; another key never sees it
    assert RowStore(tmp_path, "float", dict(key, limit=3)).resume("arc_easy").kept == {}
    assert RowStore(tmp_path, "float", key, resume=False).resume("arc_easy").kept == {}
    with pytest.raises(ValueError, match="shard"):
        store.resume("piqa", (2, 2))


def test_source_id_tells_checkpoints_in_folders_of_the_same_name_apart(tmp_path):
    for run, size in (("run1", 10), ("run2", 11)):
        (tmp_path / run / "final").mkdir(parents=True)
        (tmp_path / run / "final" / "model.safetensors").write_bytes(b"x" * size)
    one, two = source_id(tmp_path / "run1" / "final"), source_id(tmp_path / "run2" / "final")
    assert one.startswith("final-") and two.startswith("final-") and one != two
    assert source_id(tmp_path / "run1" / "final") == one


def test_source_id_follows_content_not_path_or_time(tmp_path, monkeypatch):
    """The same weights installed elsewhere (another machine's venv: other path, other mtime) keep
    their kept rows; a changed byte of the same size does not."""
    import os
    monkeypatch.setenv("SPIKEOPS_CACHE", str(tmp_path / "cache"))
    for where in ("a", "b"):
        (tmp_path / where / "m").mkdir(parents=True)
        (tmp_path / where / "m" / "w.bin").write_bytes(b"weights")
    os.utime(tmp_path / "b" / "m" / "w.bin", ns=(1, 1))
    first = source_id(tmp_path / "a" / "m")
    assert source_id(tmp_path / "b" / "m") == first
    cache = tmp_path / "cache" / "digests.json"
    assert len(json.loads(cache.read_text())) == 2  # one content digest per file, by path, size and mtime
    # a second call reads the digest from the cache, not the file: a doctored entry shows through
    stamps = json.loads(cache.read_text())
    cache.write_text(json.dumps({k: ("0" * 64 if "/a/" in k else v) for k, v in stamps.items()}))
    assert source_id(tmp_path / "a" / "m") != first == source_id(tmp_path / "b" / "m")
    cache.write_text(json.dumps(stamps))
    assert source_id(tmp_path / "a" / "m") == first
    (tmp_path / "b" / "m" / "w.bin").write_bytes(b"weightz")
    assert source_id(tmp_path / "b" / "m") != first
    assert source_id(tmp_path / "b" / "m" / "w.bin") != source_id(tmp_path / "a" / "m" / "w.bin")


def test_evaluate_tasks_reuses_kept_results_and_saves_new_ones(monkeypatch):
    calls = []

    def fake_task(lm, task, limit, batch_tokens, timer, progress):
        calls.append(task)
        timer.seconds, timer.tokens = 2.0, 100
        return {"acc": 0.25, "acc_norm": 0.5, "docs": 4, "requests": 16}

    monkeypatch.setattr(evaluate, "multiple_choice_task", fake_task)
    kept = {"piqa": {"acc": 0.75, "acc_norm": 0.5, "docs": 4, "requests": 8, "model_seconds": 1.0, "tokens": 300,
                     "wall_seconds": 1.5}}
    saved = {}
    row = evaluate_tasks(object(), tasks=("piqa", "arc_easy"), ppl_limit=0, done=kept,
                         save=lambda name, r: saved.update({name: r}))
    assert calls == ["arc_easy"] and list(saved) == ["arc_easy"]
    assert row["tasks"]["piqa"]["acc"] == 0.75 and row["avg"]["acc"] == 0.5
    assert row["tokens"] == 400 and row["model_seconds"] == 3.0 and row["tokens_per_second"] == 400 / 3.0
    # everything kept: the model is never touched
    again = evaluate_tasks(None, tasks=("piqa", "arc_easy"), ppl_limit=0, done=dict(kept, **saved))
    assert again["avg"] == row["avg"] and calls == ["arc_easy"]


def test_evaluate_tasks_leaves_a_task_another_shard_has_not_finished(monkeypatch):
    def fake_task(lm, task, limit, batch_tokens, timer, progress, resume=None):
        assert resume is not None and resume.shard == (1, 2)
        return None if task == "piqa" else {"acc": 0.5, "acc_norm": 0.5, "docs": 2, "requests": 8}

    monkeypatch.setattr(evaluate, "multiple_choice_task", fake_task)
    saved = {}
    from spikeops.gen.llm.scoring import Resume

    row = evaluate_tasks(object(), tasks=("piqa", "arc_easy"), ppl_limit=0, save=lambda n, r: saved.update({n: r}),
                         resume=lambda name: Resume({}, None, shard=(1, 2)))
    assert row is None and list(saved) == ["arc_easy"]


def test_shard_option_names_what_is_allowed():
    import argparse

    from spikeops.gen.llm.command import _shard

    assert _shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(argparse.ArgumentTypeError, match="0 <= I < N"):
            _shard(bad)


def test_plan_digest_ignores_calibration_timing_but_not_configurations():
    model = _tiny_llama()
    stats = observe(model, discover(model, "llama"), [torch.randint(2, 97, (2, 16))])
    a = make_plan(model, "llama", stats=stats, calibration={"seconds": 1.0})
    b = make_plan(model, "llama", stats=stats, calibration={"seconds": 2.0})
    c = make_plan(model, "llama", stats=stats, kinds=("norm",))
    assert plan_digest(a) == plan_digest(b) != plan_digest(c)


def test_table_without_an_original_row_and_with_the_speed_probe():
    row = {"tasks": {"piqa": {"acc": 0.48, "acc_norm": 0.6}}, "avg": {"acc": 0.48, "acc_norm": 0.6},
           "lambada": {"perplexity": 20.2}}
    rep = {"model": "m", "family": "llama", "tasks": ["piqa"], "limit": None, "rows": {"all": row},
           "speed": {"requests": 48, "tokens": 800, "repeats": 5, "ablation": "all", "float_tokens_per_second": 600,
                     "converted_tokens_per_second": 400, "slowdown": 1.5}}
    md = format_table(rep)
    assert "full validation sets" in md and "| all | 48.0 | 48.00 | 20.200 | - |" in md
    assert "float 600 tokens/s, converted 400 tokens/s, slowdown 1.50x" in md
