"""``spikeops eval --jobs N`` / ``--executor dask``: the table's rows and their shards as jobs on the
sweep's executors, each keeping its results in the output folder, the table assembled from them;
the same numbers as one process; a failing job reported, the others kept; and the refusals. On a
tiny Llama saved as a local model folder."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from spikeops.gen.cli import main  # noqa: E402
from spikeops.gen.llm.jobs import RowJob, plan_jobs, run_row  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_models import save_tiny_llama
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


def _args(tiny, out, *more):
    return ["eval", "--model", str(tiny), "--tasks", "piqa", "arc_easy", "--limit", "4", "--ppl-limit", "2",
            "--calibration-texts", "2", "--speed-repeats", "0", "--ablations", "all", "--batch-tokens", "256",
            "--out", str(out), *more]


def _scores(out):
    """Every row's task results and perplexity from ``eval.json`` (timings left out)."""
    rep = json.loads((out / "eval.json").read_text())
    return {label: ({t: (r["tasks"][t]["acc"], r["tasks"][t]["acc_norm"], r["tasks"][t]["docs"])
                     for t in r["tasks"]}, r["lambada"]["perplexity"])
            for label, r in rep["rows"].items()}


@pytest.fixture(scope="module")
def one_process(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "ev"
    assert main(_args(tiny, out)) == 0
    return _scores(out)


def test_jobs_are_rows_and_shards_enough_for_every_worker():
    opts = {"model": "m"}
    assert [j.describe() for j in plan_jobs(["original", "all"], opts, jobs=2)] == ["original", "all"]
    assert [j.shard for j in plan_jobs(["all"], opts, jobs=3)] == [(0, 3), (1, 3), (2, 3)]
    jobs = plan_jobs(["original", "all"], opts, jobs=1, shards=2, backend="numpy", threads=2)
    assert [j.describe() for j in jobs] == ["original (shard 0/2)", "original (shard 1/2)", "all (shard 0/2)",
                                            "all (shard 1/2)"]
    assert {(j.backend, j.threads) for j in jobs} == {("numpy", 2)}
    assert plan_jobs([], opts, jobs=2) == []
    with pytest.raises(ValueError, match=r"--row-shards 0 is not allowed; allowed: an integer >= 1"):
        plan_jobs(["all"], opts, jobs=1, shards=0)


def test_rows_on_two_local_workers_equal_one_process(tiny, tmp_path, one_process, capsys):
    out = tmp_path / "ev"
    assert main(_args(tiny, out, "--jobs", "2")) == 0
    text = capsys.readouterr().out
    assert "2 jobs (2 rows x 1 shards) on 2 local workers" in text
    assert "original: done in" in text and "all: done in" in text
    assert _scores(out) == one_process
    kept = json.loads((out / "rows" / "all.json").read_text())
    assert set(kept["results"]) == {"piqa", "arc_easy", "lambada"}
    assert not (out / "rows" / "all.partial.json").exists()   # every task finished: no partial scores left


def test_a_row_in_shards_on_a_local_dask_cluster_equals_one_process(tiny, tmp_path, one_process, capsys):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "ev"
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        rc = main(_args(tiny, out, "--rows", "all", "--executor", "dask", "--scheduler", cluster.scheduler_address,
                        "--row-shards", "2"))
    assert rc == 0
    text = capsys.readouterr().out
    assert "2 jobs (1 rows x 2 shards) on a Dask cluster" in text
    assert "all (shard 0/2): done" in text and "all (shard 1/2): done" in text
    assert _scores(out) == {"all": one_process["all"]}    # only the row asked for, and equal


def test_a_failing_job_is_reported_and_the_others_keep_their_rows(tiny, tmp_path, monkeypatch, capsys):
    """In this process (``--jobs 1 --row-shards 1``): the ``all`` row's scoring raises; the original
    row is kept, the command exits 1 naming the job and its error, and the same command (with the
    fault gone) completes the table reusing the kept row; ``--fresh`` recomputes both."""
    from spikeops.gen.llm import evaluate

    out = tmp_path / "ev"
    real, calls = evaluate.multiple_choice_task, []

    def broken(lm, *a, **k):
        calls.append(1)
        if len(calls) > 2:                                # the original row's two tasks pass, 'all' fails
            raise RuntimeError("disk on fire")
        return real(lm, *a, **k)

    monkeypatch.setattr(evaluate, "multiple_choice_task", broken)
    args = _args(tiny, out, "--jobs", "1", "--row-shards", "1")
    assert main(args) == 1
    text = capsys.readouterr().out
    assert "eval: 1 of 2 jobs failed (all: RuntimeError: disk on fire)" in text
    assert "the same command resumes" in text
    kept = json.loads((out / "rows" / "original.json").read_text())
    assert set(kept["results"]) == {"piqa", "arc_easy", "lambada"}
    assert "original" in json.loads((out / "eval.json").read_text())["rows"]

    calls.clear()
    monkeypatch.setattr(evaluate, "multiple_choice_task", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(args) == 0
    assert len(calls) == 2                                # the two tasks of 'all' only; 'original' reused
    assert set(json.loads((out / "eval.json").read_text())["rows"]) == {"original", "all"}
    calls.clear()
    assert main(args + ["--fresh"]) == 0
    assert "--fresh: kept results of original, all dropped" in capsys.readouterr().out
    assert len(calls) == 4


def test_run_row_reports_an_error_instead_of_raising(tmp_path):
    res = run_row(RowJob("no such row", {"model": "no-such-model", "out_dir": str(tmp_path)}))
    assert res["status"] == "failed" and res["message"] and res["seconds"] >= 0


@pytest.mark.parametrize("more, needles", [
    (["--jobs", "0"], ["--jobs 0 is not allowed", "an integer >= 1"]),
    (["--row-shards", "0"], ["--row-shards 0 is not allowed", "an integer >= 1"]),
    (["--jobs", "2", "--shard", "0/2"], ["--shard 0/2 with --jobs/--executor is not allowed", "--row-shards N"]),
    (["--scheduler", "tcp://127.0.0.1:1"], ["--scheduler is for --executor dask"]),
    (["--jobs", "2", "--rows", "al"], ["rows ['al'] are not allowed", "allowed: original, all"]),
])
def test_bad_job_options_are_refused_before_any_work(tiny, tmp_path, more, needles, capsys):
    rc = main(_args(tiny, tmp_path / "o", *more))
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("spikeops: error: "), err
    for n in needles:
        assert n in err, (n, err)
    assert not (tmp_path / "o").exists()


def test_jobs_are_refused_for_an_encoder(tmp_path, capsys):
    rc = main(["eval", "--model", "minilm", "--jobs", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--jobs/--executor is not allowed for minilm" in err and "--jobs 1" in err


def test_a_spiking_row_in_two_shards_equals_one_process(tiny, tmp_path, capsys):
    """The spiking network's rows shard as the ANN rows do; shard 0 makes the activity pass."""
    label = "SNN T=2 L=4 W8A8"

    def run(out, *more):
        assert main(["eval", "--model", str(tiny), "--tasks", "piqa", "--limit", "4", "--ppl-limit", "2",
                     "--calibration-texts", "2", "--speed-repeats", "0", "--snn", "T=2,L=4", "--rows", label,
                     "--batch-tokens", "256",                # several batches, so both shards score some
                     "--out", str(out), *more]) == 0
        r = json.loads((out / "eval.json").read_text())["rows"][label]
        return ({t: (v["acc"], v["acc_norm"], v["docs"]) for t, v in r["tasks"].items()}, r["lambada"]["perplexity"],
                {k: r["activity"][k] for k in ("steps_run", "spikes_per_neuron", "ac_per_token")})

    one = run(tmp_path / "one")
    two = run(tmp_path / "two", "--jobs", "1", "--row-shards", "2")
    assert f"{label} (shard 1/2): done" in capsys.readouterr().out
    assert one == two and one[0]["piqa"][2] == 4
