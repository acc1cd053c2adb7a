"""The Verilator runtime's object cache (:mod:`spikeops.verif.objcache`), with a fake compiler that
logs each real compile: a source outside the build folder compiles once for every build that
shares its flags and headers; another source, other flags or another compiler compile again; the
design's own sources, a failed compile and a cache folder it cannot make behave as without it."""

import os
import stat
import sys

import pytest

from spikeops.verif import env, objcache

FAKE = f"""#!{sys.executable}
import sys
args = sys.argv[1:]
if args == ["--version"]:
    print("fake-cc VERSION")
    sys.exit(0)
src = next(a for a in args if a.endswith(".cpp"))
text = open(src).read()
if "-E" in args:
    print(" ".join(a for a in args if a.startswith("-D")), text)
    sys.exit(0)
if "error" in text:
    sys.exit(1)
out = args[args.index("-o") + 1]
open(out, "w").write("object of " + text + " ".join(args))
open(out[:-2] + ".d", "w").write(out + ": " + src)
open(LOG, "a").write(src + "\\n")
"""


@pytest.fixture
def cc(tmp_path):
    def make(version="VERSION"):
        path = tmp_path / f"cc-{version}"
        path.write_text(FAKE.replace("LOG", repr(str(tmp_path / "log"))).replace("VERSION", version))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)
    return make


def compiles(tmp_path):
    log = tmp_path / "log"
    return log.read_text().splitlines() if log.exists() else []


def build(tmp_path, name, compiler, source, *flags, cache="cache"):
    work = tmp_path / name
    work.mkdir(exist_ok=True)
    status = objcache.cached_compile([compiler, *flags, "-MMD", "-c", "-o", "verilated.o", str(source)],
                                     tmp_path / cache, cwd=work)
    return status, work


def test_a_runtime_source_compiles_once_for_every_build(tmp_path, cc):
    src = tmp_path / "include" / "verilated.cpp"
    src.parent.mkdir()
    src.write_text("int runtime;")
    compiler = cc()
    s1, w1 = build(tmp_path, "b1", compiler, src, "-O2")
    s2, w2 = build(tmp_path, "b2", compiler, src, "-O2")
    assert (s1, s2) == (0, 0) and compiles(tmp_path) == [str(src)]
    assert (w2 / "verilated.o").read_text() == (w1 / "verilated.o").read_text()
    assert (w2 / "verilated.d").read_text() == (w1 / "verilated.d").read_text()
    build(tmp_path, "b3", compiler, src, "-O2", "-DVM_TRACE=1")          # other flags
    build(tmp_path, "b4", cc("OTHER"), src, "-O2")                       # another compiler
    src.write_text("int runtime2;")                                      # another Verilator's source
    build(tmp_path, "b5", compiler, src, "-O2")
    assert len(compiles(tmp_path)) == 4
    assert "int runtime2" in (tmp_path / "b5" / "verilated.o").read_text()


def test_the_designs_own_sources_a_failed_compile_and_an_unwritable_folder_compile_as_without_it(tmp_path, cc):
    compiler = cc()
    work = tmp_path / "b"
    work.mkdir()
    (work / "Vtop.cpp").write_text("int design;")
    for _ in range(2):
        assert objcache.cached_compile([compiler, "-c", "-o", "Vtop.o", "Vtop.cpp"], tmp_path / "cache", cwd=work) == 0
    assert len(compiles(tmp_path)) == 2 and not (tmp_path / "cache").exists()

    bad = tmp_path / "bad.cpp"
    bad.write_text("error")
    assert build(tmp_path, "c", compiler, bad)[0] == 1
    assert not list((tmp_path / "cache").glob("*.o"))

    good = tmp_path / "good.cpp"
    good.write_text("int fine;")
    (tmp_path / "taken").write_text("a file where the cache folder would go")
    status, work = build(tmp_path, "d", compiler, good, cache="taken/cache")
    assert status == 0 and (work / "verilated.o").exists()


def test_prepare_sets_the_cache_unless_the_user_chose_objcache(monkeypatch, tmp_path):
    monkeypatch.delenv("OBJCACHE", raising=False)
    monkeypatch.delenv(objcache.DIR_VARIABLE, raising=False)
    monkeypatch.setenv(env.CACHE_VARIABLE, str(tmp_path))
    env.prepare()
    assert os.environ["OBJCACHE"].endswith("objcache.py")
    assert os.environ[objcache.DIR_VARIABLE] == str(tmp_path / "verilator-objects")
    monkeypatch.setenv("OBJCACHE", "ccache")
    env.prepare()
    assert os.environ["OBJCACHE"] == "ccache"
