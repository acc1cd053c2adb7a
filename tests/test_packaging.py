"""The distribution installs as one namespace, ``spikeops``, and works from outside the source tree.

The wheel is built from this checkout and installed (without dependencies) into a fresh virtual
environment whose only other source of packages is this environment's site-packages, added as a
plain path (so this checkout's editable install is not seen); then, from an empty folder, the
installed ``spikeops`` command runs the error report of SiLU and emits Softmax, and
``spikeops.golden`` imports.  No top-level ``gen``, ``hdl``, ``golden`` or ``verif`` may land in
site-packages.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # from a copy of the sources, so that no build folder of the checkout (stale modules) leaks in
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    for layer in ("golden", "hdl", "verif", "gen"):
        shutil.copytree(ROOT / layer, src / layer, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("spikeops-*.whl")
    return whl


def test_the_wheel_holds_one_namespace_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"spikeops"}
    assert {n.split("/")[1] for n in names if n.startswith("spikeops/")} == {"golden", "hdl", "verif", "gen"}
    assert "spikeops/verif/data/smollm2.npz" in names and "spikeops/verif/data/minilm.npz" in names
    # every source module of the checkout is in the wheel (the ECP5 blocks' simulation models too)
    for layer in ("golden", "hdl", "verif", "gen"):
        for src in (ROOT / layer).rglob("*"):
            if src.suffix in (".py", ".c", ".v") and "__pycache__" not in src.parts:
                assert f"spikeops/{layer}/{src.relative_to(ROOT / layer).as_posix()}" in names, src


def test_the_installed_wheel_runs_outside_the_source_tree(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies from this environment, as a plain path: its .pth files (the editable
    # install of this checkout among them) are not processed
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                        str(wheel)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not any((site / top).exists() for top in ("gen", "hdl", "golden", "verif"))
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = lambda *args: subprocess.run([str(py), *args], cwd=work, env=env, capture_output=True,  # noqa: E731
                                       text=True, timeout=900)
    r = run("-c", "import spikeops.golden, spikeops.golden.registry as r; print(spikeops.golden.__path__[0]);"
                  "print(sorted(r.OPERATORS))")
    assert r.returncode == 0, r.stderr[-2000:]
    where, ops = r.stdout.splitlines()
    assert Path(where).resolve().is_relative_to(site.resolve()) and "silu" in ops
    cli = [str(py), "-c", "import sys; from spikeops.gen.cli import main; sys.exit(main(sys.argv[1:]))"]
    r = subprocess.run([*cli, "errors", "--ops", "silu", "--json", "errors.json"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((work / "errors.json").read_text())["rows"]
    assert rows and {row["op"] for row in rows} == {"silu"}
    assert any(row["dataset"].startswith("captured") for row in rows)  # the shipped activations came along
    r = subprocess.run([*cli, "verilog", "--op", "softmax", "-o", "rtl"], cwd=work, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (work / "rtl" / "spikeops_softmax.v").is_file() and (work / "rtl" / "spikeops_softmax.json").is_file()
